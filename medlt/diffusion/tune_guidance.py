"""`medlt tune-guidance`: one classifier-free guidance scale per class group (head / medium / tail).

For every candidate scale ω the generator samples `per_class` images of every class (the same
seeds at every scale, so the scales are compared on common noise); a fixed reference classifier
(a `medlt classify` or `medlt oracle` run) scores them against the real balanced-val split with

- class-matched FID and KID per group (medlt.metrics.feature_stats: uniform class weights, the same
  on both sides; features = the reference classifier's penultimate layer, the one extractor), and
- class fidelity per group (medlt.metrics.fidelity: share of images the reference assigns to the
  intended class; multi-label: AUROC of the intended class's score).

Rule (per group, `choose_scale`): let ω* be the scale with the lowest group FID and [lo, hi] its 95%
bootstrap interval; among the scales whose group FID is <= hi (statistically as good as the best
FID), take the one with the highest group fidelity; ties go to the smaller scale. A group without FID
values (too few real images of its classes) takes the scale of the highest fidelity; a group with
neither keeps the recipe's sampling.guidance_scale. The interval has evaluate.fid_bootstrap_replicates
replicates (0: no interval, the best FID's point value is the bound); KID uses
evaluate.kid_num_subsets subsets of per_class rows. FID here is at n = per_class synthetic images per
class: values are comparable across scales (equal n), not with FIDs at other sample sizes.

Writes DIR/guidance.json (atomically; `medlt synth --guidance-from DIR/guidance.json` reads its
"scales") and DIR/guidance.png (FID and fidelity vs scale, one line per group).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from medlt.data.labels import GROUPS
from medlt.errors import DataError, MedltError, UsageError
from medlt.utils.atomic import atomic_write_bytes, atomic_write_text
from medlt.utils.seeding import derive_seed

DEFAULT_SCALES = (0.0, 0.5, 1.0, 1.6, 2.5, 4.0)
GUIDANCE_FILE = "guidance.json"
PLOT_FILE = "guidance.png"
RULE = ("per group: among the scales whose class-matched group FID is at most the upper end of the 95% "
        "interval of the group's lowest FID, the one with the highest group class fidelity (ties: the "
        "smaller scale); no FID values: the highest fidelity; neither: sampling.guidance_scale")


def _finite(v) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def choose_scale(rows: Sequence[dict], fallback: float) -> tuple[float, str]:
    """The module docstring's rule for one group. rows: [{"scale", "fid", "fid_ci95", "fidelity"}].
    Returns (scale, reason)."""
    with_fid = [r for r in rows if _finite(r.get("fid"))]
    with_fidelity = [r for r in rows if _finite(r.get("fidelity"))]

    def best_fidelity(cands):
        return max(cands, key=lambda r: (r["fidelity"], -r["scale"]))

    if with_fid:
        best = min(with_fid, key=lambda r: (r["fid"], r["scale"]))
        ci = best.get("fid_ci95")
        hi = ci[1] if ci else best["fid"]
        cands = [r for r in with_fid if r["fid"] <= hi]
        scored = [r for r in cands if _finite(r.get("fidelity"))]
        if not scored:
            return float(best["scale"]), f"lowest FID {best['fid']:.4g} (no fidelity values)"
        pick = best_fidelity(scored)
        return float(pick["scale"]), (f"highest fidelity {pick['fidelity']:.3f} among scales "
                                      f"{[r['scale'] for r in cands]} with FID <= {hi:.4g} (the upper end of "
                                      f"the interval of the lowest FID {best['fid']:.4g} at scale {best['scale']})")
    if with_fidelity:
        pick = best_fidelity(with_fidelity)
        return float(pick["scale"]), f"no FID values (too few real images); highest fidelity {pick['fidelity']:.3f}"
    return float(fallback), "no FID or fidelity values; the recipe's sampling.guidance_scale"


def check_scales(scales: Sequence[float]) -> list[float]:
    """The guidance scales as floats; UsageError naming --scales unless there is at least one and each
    is a finite number >= 0."""
    values = [float(s) for s in scales]
    if not values or any(not math.isfinite(s) or s < 0 for s in values):
        raise UsageError(f"--scales must be numbers >= 0, got {', '.join(f'{s:g}' for s in values) or 'none'}")
    return values


def _group_fidelity(report: dict, group: str) -> float | None:
    if report.get("mode") == "single-label" or "group_mean_fidelity" in report:
        v = (report.get("group_mean_fidelity") or {}).get(group)
    else:  # multi-label: group mean AUROC
        v = (report.get("group_mean_auroc") or {}).get(group)
    return float(v) if _finite(v) else None


def _synthetic_labels(names: Sequence[str], multi_label: bool, per_class: int, seed: int):
    """(labels, seeds): `per_class` images of each class (multi-label: its one-hot vector)."""
    k = len(names)
    labels, seeds = [], []
    for c in range(k):
        for i in range(per_class):
            if multi_label:
                v = torch.zeros(k)
                v[c] = 1.0
                labels.append(v)
            else:
                labels.append(torch.tensor(c))
            seeds.append(derive_seed(seed, "tune-guidance", names[c], i))
    return torch.stack(labels), seeds


def tune_guidance(recipe, checkpoint: str | Path, reference: str | Path, out_dir: str | Path, *,
                  scales: Sequence[float] = DEFAULT_SCALES, steps: int | None = None, sampler: str | None = None,
                  per_class: int = 16, device: str = "cpu", show_progress: bool = True,
                  log: Callable[[str], None] | None = None) -> dict:
    """Run the sweep, write DIR/guidance.json and DIR/guidance.png, return the guidance.json dict."""
    from medlt.classify.reference import load_reference, reference_name, reference_record
    from medlt.cliutils import progress
    from medlt.data.loaders import build_dataloader
    from medlt.data.sources import label_space_for
    from medlt.diffusion.sample import check_sampler, load_generator, recipe_for_generator, resolve_checkpoint
    from medlt.metrics.feature_stats import ClassFeatureStats
    from medlt.metrics.fidelity import ClassFidelityAccumulator

    log = log or (lambda s: None)
    scales = sorted({float(s) for s in check_scales(scales)})
    if per_class < 2:
        raise UsageError(f"--per-class must be >= 2 (FID needs two images per class), got {per_class}")
    if recipe.data.splits.val is None:
        raise DataError("data.splits.val is null: tune-guidance scores against the real balanced-val split")
    gen = load_generator(checkpoint, device=device)
    ls = gen.label_space
    mine = label_space_for(recipe.data)
    if tuple(mine.names) != tuple(ls.names) or bool(mine.multi_label) != bool(ls.multi_label):
        raise DataError(f"checkpoint {checkpoint} was trained on classes {list(ls.names)} (multi_label="
                        f"{ls.multi_label}); the recipe's data has {list(mine.names)} (multi_label="
                        f"{mine.multi_label}); use the recipe it was trained with")
    recipe = recipe_for_generator(recipe, gen, checkpoint)  # the checkpoint defines its model
    names = list(ls.names)
    sampler = sampler or recipe.sampling.sampler
    steps = int(steps or recipe.sampling.num_inference_steps)
    t_max = gen.recipe.diffusion.num_train_timesteps
    if not 1 <= steps <= t_max:
        raise UsageError(f"--steps must be between 1 and the model's num_train_timesteps={t_max} (got {steps})")
    check_sampler(sampler, gen.recipe.diffusion.objective)
    ref = load_reference(reference, recipe, ls, device)
    extractor = reference_name(ref)
    groups = ls.groups(gen.train_class_counts, tuple(recipe.data.group_thresholds))
    present = [g for g in GROUPS if g in groups]

    real = []
    loader = build_dataloader(recipe, "val", recipe.evaluate.batch_size, shuffle=False)
    for b in progress(loader, desc="features balanced-val", unit="batch", disable=not show_progress):
        real.append((ref.features(b["image"]), torch.as_tensor(b["label"])))
    if not real:
        raise DataError(f"split '{recipe.data.splits.val}' has no images")
    labels, seeds = _synthetic_labels(names, ls.multi_label, per_class, recipe.seed)
    bs = recipe.sampling.batch_size

    def images():
        for scale in scales:
            for s in range(0, len(seeds), bs):
                y = labels[s:s + bs]
                x = gen.generate(y, seeds[s:s + bs], guidance_scale=scale, num_inference_steps=steps,
                                 sampler=sampler, batch_size=bs)
                yield scale, y, x

    per_scale, stats, fidelity = [], {}, {}
    total = len(scales) * len(seeds)
    bar = progress(images(), total=math.ceil(len(seeds) / bs) * len(scales), desc=f"sample {total} images",
                   unit="batch", disable=not show_progress)
    for scale, y, x in bar:
        if scale not in stats:
            stats[scale] = ClassFeatureStats(names, groups, extractor_name=extractor, fid_samples_per_class=per_class,
                                             reservoir_capacity=max(per_class, 1000), min_real_per_class=2,
                                             min_synthetic_per_class=2, seed=recipe.seed)
            for f, yr in real:
                stats[scale].update("real", f, yr)
            fidelity[scale] = ClassFidelityAccumulator(names, groups, multi_label=ls.multi_label,
                                                       threshold=recipe.classifier.threshold)
        stats[scale].update("synthetic", ref.features(x), y)
        fidelity[scale].update(y, ref.predict_proba(x))
    for scale in scales:
        fk = stats[scale].compute(kid_subset_size=per_class, kid_num_subsets=recipe.evaluate.kid_num_subsets,
                                  bootstrap_replicates=recipe.evaluate.fid_bootstrap_replicates)
        fr = fidelity[scale].compute()
        row = {"scale": scale, "groups": {}}
        for g in present:
            sc = fk["scopes"].get(f"group:{g}", {})
            row["groups"][g] = {"fid": _num(sc.get("fid")), "fid_ci95": sc.get("fid_ci95"),
                                "kid_mean": _num(sc.get("kid_mean")), "fidelity": _group_fidelity(fr, g),
                                "classes_with_fid": len(sc.get("classes", []))}
        ov = fk["scopes"]["overall"]
        row["overall"] = {"fid": _num(ov.get("fid")), "fid_ci95": ov.get("fid_ci95"), "kid_mean": _num(ov.get("kid_mean"))}
        per_scale.append(row)
        log(f"scale {scale:g}: " + ", ".join(
            f"{g} FID {_fmt(row['groups'][g]['fid'])} fidelity {_fmt(row['groups'][g]['fidelity'])}" for g in present))

    choice = {}
    for g in present:
        rows = [{"scale": r["scale"], **r["groups"][g]} for r in per_scale]
        w, why = choose_scale(rows, recipe.sampling.guidance_scale)
        choice[g] = {"scale": w, "reason": why}
    ckpt = resolve_checkpoint(checkpoint)
    result = {
        "scales": {g: choice[g]["scale"] for g in present},
        "rule": RULE,
        "choice": choice,
        "class_groups": dict(zip(names, groups, strict=True)),
        "train_class_counts": dict(zip(names, gen.train_class_counts, strict=True)),
        "group_thresholds": list(recipe.data.group_thresholds),
        "generator": {"checkpoint": str(ckpt.resolve()), "checkpoint_sha256": gen.checkpoint_sha256,
                      "objective": gen.recipe.diffusion.objective, "step": gen.step,
                      "decode": getattr(gen, "decode_settings", None),  # latent: this run's decoding
                      "sampling_options": getattr(gen, "sampling_settings", None)},
        "sampler": sampler, "steps": steps, "per_class": per_class, "candidate_scales": scales,
        "split": recipe.data.splits.val, "extractor": extractor, "reference": reference_record(ref, str(reference)),
        "fidelity_measure": "AUROC of the intended class's score" if ls.multi_label else
                            "share assigned to the intended class",
        "note": f"FID at n = {per_class} synthetic images per class: comparable across scales (equal n), "
                f"not with FIDs at other sample sizes",
        "per_scale": per_scale,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / GUIDANCE_FILE, json.dumps(result, indent=2, allow_nan=False, default=_json_default) + "\n")
    atomic_write_bytes(out / PLOT_FILE, plot_png(per_scale, present, extractor, result["fidelity_measure"]))
    return result


def _num(v) -> float | None:
    """A finite float, else None (JSON has no NaN)."""
    return float(v) if _finite(v) else None


def _fmt(v) -> str:
    return "n/a" if not _finite(v) else f"{v:.4g}"


def _json_default(o):
    raise TypeError(f"not JSON: {type(o)}")


def plot_png(per_scale: list[dict], groups: Sequence[str], extractor: str, fidelity_measure: str) -> bytes:
    """Two panels (FID, fidelity) vs guidance scale, one line per group; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    xs = [r["scale"] for r in per_scale]
    for g in groups:
        fid = [r["groups"][g]["fid"] if _finite(r["groups"][g]["fid"]) else float("nan") for r in per_scale]
        fy = [r["groups"][g]["fidelity"] if _finite(r["groups"][g]["fidelity"]) else float("nan") for r in per_scale]
        axes[0].plot(xs, fid, marker="o", label=g)
        axes[1].plot(xs, fy, marker="o", label=g)
    axes[0].set(xlabel="guidance scale ω", ylabel="class-matched FID", title=f"FID ({extractor[:40]})")
    axes[1].set(xlabel="guidance scale ω", ylabel="class fidelity", title=fidelity_measure)
    for a in axes:
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# ----------------------------------------------------------------- reading guidance.json (synth)

def load_guidance_scales(path: str | Path) -> tuple[dict[str, float], dict]:
    """({group: scale}, the whole file) from a guidance.json; MedltError naming the file otherwise."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise MedltError(f"--guidance-from {p}: cannot read ({e.strerror or e.__class__.__name__})") from None
    except json.JSONDecodeError as e:
        raise MedltError(f"--guidance-from {p}: not JSON (line {e.lineno}: {e.msg})") from None
    scales = data.get("scales") if isinstance(data, dict) else None
    if not isinstance(scales, dict) or not scales:
        raise MedltError(f"--guidance-from {p}: no 'scales' object (write it with `medlt tune-guidance`)")
    out = {}
    for g, w in scales.items():
        if g not in GROUPS:
            raise MedltError(f"--guidance-from {p}: 'scales' has unknown group '{g}' (groups: {', '.join(GROUPS)})")
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise MedltError(f"--guidance-from {p}: scales.{g} must be a number >= 0, got {w!r}")
        out[g] = float(w)
    return out, data
