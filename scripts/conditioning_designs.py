"""Multi-label conditioning designs side by side on a phantom, at equal steps: label sensitivity, the
phantom oracle's per-class AUROC of a balanced probe set (head / medium / tail means with bootstrap
intervals), and training-step time measured side by side.

    OMP_NUM_THREADS=1 python scripts/conditioning_designs.py --layout ct-rate --work /tmp/designs-ct
    OMP_NUM_THREADS=1 python scripts/conditioning_designs.py --layout nih-cxr-lt --work /tmp/designs-nih

ct-rate: the latent CT recipe (recipes/phantom/ct_rate_latent.yaml, 160-scan phantom, its autoencoder);
nih-cxr-lt: the multi-label NIH phantom (`medlt phantom --layout nih-cxr-lt --multi-label`) with
recipes/phantom/nih_cxr_lt.yaml and data.multi_label=true. Every design trains with the same recipe,
seed and data; training is stopped at each of --steps, its checkpoint kept, and resumed (the learning
rate is constant after warm-up, so the stops do not change the run). --jobs trains designs in parallel
(one CPU thread each). Every stage is skipped when its output exists: re-run to continue. Writes
WORK/designs.json and WORK/designs.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {
    "ct-rate": {"recipe": REPO / "recipes" / "phantom" / "ct_rate_latent.yaml", "phantom": ["-n", "160"],
                "latent": True, "steps": "2000,6000", "sets": [],
                "oracle_per_class": 120, "oracle": ["--set", "classifier.epochs=25", "--set", "classifier.lr=0.003"]},
    "nih-cxr-lt": {"recipe": REPO / "recipes" / "phantom" / "nih_cxr_lt.yaml", "phantom": ["--multi-label"],
                   "latent": False, "steps": "400",
                   "sets": ["data.multi_label=true", "data.splits.val=val", "data.splits.test=test"],
                   "oracle_per_class": 60, "oracle": ["--set", "classifier.epochs=8"]},
}
GROUPS = ("head", "medium", "tail")


def medlt(*args, threads: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDLT_PROGRESS": os.environ.get("MEDLT_PROGRESS", "lines")}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print("$ medlt", " ".join(map(str, args)), flush=True)
    r = subprocess.run([sys.executable, "-m", "medlt", *map(str, args)], env=env, cwd=str(REPO),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"medlt {args[0]} failed:\n{r.stderr[-3000:]}")
    return r


def train_design(recipe: Path, run: Path, steps: list[int], s: list[str], threads: int) -> dict[int, Path]:
    """Train one design to each of `steps`, keeping a copy of the checkpoint at each stop."""
    out = {}
    for n in steps:
        kept = run / "checkpoints" / f"step{n}.pt"
        if not kept.is_file():
            last = run / "checkpoints" / "last.pt"
            resume = ["--resume"] if last.is_file() else []
            medlt("train", recipe, "--out", run, *s, "--set", f"training.max_steps={n}", *resume, threads=threads)
            tmp = kept.with_suffix(".tmp")
            shutil.copyfile(last, tmp)
            os.replace(tmp, kept)
        out[n] = kept
    return out


def sensitivity_reports(ls_dir: Path) -> dict[str, dict]:
    """name -> report (checkpoint, base, summary, ...) of a `medlt label-sensitivity` output folder:
    comparison.json when it measured several checkpoints, label_sensitivity.json when it measured one
    (one design at one step); {} when it holds neither."""
    if (ls_dir / "comparison.json").is_file():
        return json.loads((ls_dir / "comparison.json").read_text())
    if (ls_dir / "label_sensitivity.json").is_file():
        return {"checkpoint": json.loads((ls_dir / "label_sensitivity.json").read_text())}
    return {}


def probe_scores(rec, probe: Path, ref):
    """(intended (N, K), oracle probabilities (N, K)) of every probe image."""
    import numpy as np

    from medlt.classify.reference import synthetic_scores

    pairs = list(synthetic_scores(rec, probe, ref, batch_size=16))
    return np.concatenate([t.numpy() for t, _ in pairs]), np.concatenate([p.numpy() for _, p in pairs])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layout", choices=list(LAYOUTS), required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--designs", default="time-embedding,adaptive-norm",
                    help="comma-separated model.multi_label_conditioning values (default: %(default)s)")
    ap.add_argument("--steps", default=None, help="comma-separated training steps at which each design is "
                    "measured (default: ct-rate 2000,6000; nih-cxr-lt 400)")
    ap.add_argument("--jobs", type=int, default=2, help="designs trained in parallel, one thread each")
    ap.add_argument("--probe-per-class", type=int, default=16)
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of the probe images")
    ap.add_argument("--guidance", default=None, help="comma-separated guidance scales of the probe sets "
                    "(default: the recipe's sampling.guidance_scale)")
    ap.add_argument("--oracle-per-class", type=int, default=None,
                    help="training images per class of the oracle's phantom (default: ct-rate 120, nih-cxr-lt 60)")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="recipe override for every verb (after the layout's own, so it wins)")
    a = ap.parse_args(argv)
    lay = LAYOUTS[a.layout]
    designs = [d.strip() for d in a.designs.split(",") if d.strip()]
    steps = sorted(int(n) for n in (a.steps or lay["steps"]).split(","))
    w = a.work.resolve()
    ph, ae, oracle = w / "phantom", w / "ae", w / "oracle"
    recipe = lay["recipe"]
    sets = [f"data.root={ph}", f"data.labels={ph}", *lay["sets"], *a.sets]
    if lay["latent"]:
        sets.append(f"model.latent.autoencoder={ae}")
    s = [x for kv in sets for x in ("--set", kv)]
    if not (ph / "medlt_phantom.json").exists():
        medlt("phantom", "--layout", a.layout, "--out", ph, *lay["phantom"])
    if lay["latent"] and not (ae / "checkpoints" / "last.pt").is_file():
        medlt("train-autoencoder", recipe, "--out", ae, *s)
    jobs = max(1, min(a.jobs, len(designs)))
    with ThreadPoolExecutor(jobs) as pool:
        futures = {d: pool.submit(train_design, recipe, w / d, steps,
                                  s + ["--set", f"model.multi_label_conditioning={d}"], 1 if jobs > 1 else None)
                   for d in designs}
        ckpts = {d: f.result() for d, f in futures.items()}
    if not (oracle / "oracle.json").is_file():
        per_class = a.oracle_per_class or lay["oracle_per_class"]
        medlt("oracle", recipe, "--out", oracle, "--per-class", per_class, *lay["oracle"], *s)
    ls_dir = w / "label_sensitivity"
    wanted = {str(ckpts[d][n].resolve()) for d in designs for n in steps}
    if wanted - {str(Path(v["checkpoint"]).resolve()) for v in sensitivity_reports(ls_dir).values()}:
        shutil.rmtree(ls_dir, ignore_errors=True)  # measured again, all checkpoints with the same seeds
        medlt("label-sensitivity", recipe, *[x for d in designs for n in steps for x in ("-c", ckpts[d][n])],
              "--out", ls_dir, "--device", "cpu", *s)
    sens = sensitivity_reports(ls_dir)

    sys.path.insert(0, str(REPO))
    from medlt.bench.probe import write_probe
    from medlt.classify.reference import load_reference
    from medlt.data.table import load_table
    from medlt.metrics.fidelity import class_fidelity_multi_label, group_mean_auroc_intervals
    from medlt.recipe import load_recipe

    rec = load_recipe(recipe, sets)
    table = load_table(rec)
    lsp = table.label_space
    groups = lsp.groups(table.class_counts("train"), rec.data.group_thresholds)
    ref = load_reference(oracle, rec, lsp)
    oracle_info = json.loads((oracle / "oracle.json").read_text())
    scales = [float(x) for x in a.guidance.split(",")] if a.guidance else [rec.sampling.guidance_scale]
    rows, scores = [], {}
    for d in designs:
        for n in steps:
            for omega in scales:
                default = omega == rec.sampling.guidance_scale
                probe = w / d / (f"probe-step{n}" + ("" if default else f"-w{omega:g}"))
                rec_w = load_recipe(recipe, sets + [f"model.multi_label_conditioning={d}",
                                                    f"sampling.guidance_scale={omega}"])
                print(f"$ probe: {d} at step {n}, guidance {omega:g}: {a.probe_per_class} per class -> {probe}",
                      flush=True)
                write_probe(rec_w, probe, ckpts[d][n], a.probe_per_class)
                t, p = probe_scores(rec, probe, ref)
                scores[(d, n, omega)] = (t, p)
                rep = class_fidelity_multi_label(t, p, lsp.names, groups)
                # paired with the first design: the same probe plan (labels and seeds), image for image
                base = scores.get((designs[0], n, omega)) if d != designs[0] else None
                paired = base is not None and base[0].shape == t.shape and (base[0] == t).all()
                ci = group_mean_auroc_intervals(t, p, groups, n_boot=a.boot, seed=0,
                                                baseline_scores=base[1] if paired else None)
                name = next(k for k, v in sens.items()
                            if Path(v["checkpoint"]).resolve() == ckpts[d][n].resolve())
                rows.append({"design": d, "step": n, "guidance_scale": omega,
                             "label_sensitivity": sens[name]["summary"], "auroc_by_group": ci,
                             "mean_auroc": rep["mean_auroc"],
                             "per_class": {c: {k: e[k] for k in ("group", "auroc", "auroc_ci95", "n_intended")}
                                           for c, e in rep["per_class"].items()}})
    from medlt.diffusion.sample import load_generator

    gen = load_generator(ckpts[designs[0]][steps[-1]])  # what the network sees: latents or pixels
    shape = tuple(gen.latent_shape) if lay["latent"] else (rec.model.in_channels, *rec.data.image_size)
    from medlt.diffusion.compare_conditioning import step_times

    ms = {d: 1e3 * v for d, v in step_times(rec, lsp, designs, repeats=7, shape=shape).items()}
    base = next(iter(sens.values())).get("base")
    out = {"layout": a.layout, "designs": designs, "steps": steps, "probe_per_class": a.probe_per_class,
           "label_sensitivity_base": base,
           "judge": f"phantom oracle ({oracle})", "oracle": oracle_info, "ms_per_step": ms, "rows": rows}
    (w / "designs.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    md = render(out)
    (w / "designs.md").write_text(md)
    print(md)
    return out


def render(out: dict) -> str:
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"# Conditioning designs on the {out['layout']} phantom", "",
             "Label sensitivity: sample label / seed change (0 = label ignored; base condition: "
             f"{out.get('label_sensitivity_base') or 'as in label_sensitivity/'}); AUROC: the phantom oracle's "
             f"per-class AUROC of the intended label over a balanced probe ({out['probe_per_class']} per class), "
             "group means with 95% bootstrap intervals over probe images; chance 0.5.", "",
             f"Δ: paired difference from {out['designs'][0]} on the same probe plan (labels, seeds), same resamples.",
             "",
             "| design | steps | guidance | label sensitivity (all) | label / time embedding | head AUROC | "
             "medium AUROC | tail AUROC | Δ head / medium / tail | ms / step |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        cells = []
        for g in GROUPS:
            e = r["auroc_by_group"].get(g)
            cells.append("–" if e is None else f"{e['mean']:.2f} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]")
        deltas = []
        for g in GROUPS:
            e = r["auroc_by_group"].get(g) or {}
            deltas.append(f"{e['delta']:+.2f} [{e['delta_ci95'][0]:+.2f}, {e['delta_ci95'][1]:+.2f}]"
                          if "delta" in e else "–")
        sens = r["label_sensitivity"]["all"]
        lines.append(f"| {r['design']} | {r['step']} | {r['guidance_scale']:g} | {f(sens['sample_ratio'])} | "
                     f"{f(sens.get('embedding_ratio'))} | " + " | ".join(cells) + " | " + " / ".join(deltas)
                     + f" | {out['ms_per_step'][r['design']]:.0f} |")
    real = out["oracle"].get("test_on_evaluated_phantom", {}).get("per_class_auroc") or []
    names = list(out["rows"][0]["per_class"]) if out["rows"] else []
    oracle_auc = dict(zip(names, real, strict=False))  # empty when the oracle has no test scores
    lines += ["", "Head classes: AUROC [95% CI] of the probe under the oracle; in parentheses the oracle's own "
              "AUROC on the real held-out phantom volumes (a class it recognises at >= 0.85 is marked *):", ""]
    for r in out["rows"]:
        heads = []
        for c, e in r["per_class"].items():
            if e["group"] != "head":
                continue
            o = oracle_auc.get(c)
            mark = "" if o is None else f" (oracle {o:.2f}{'*' if o >= 0.85 else ''})"
            heads.append(f"{c} {e['auroc']:.2f} [{e['auroc_ci95'][0]:.2f}, {e['auroc_ci95'][1]:.2f}]{mark}")
        lines.append(f"- {r['design']} at {r['step']} (guidance {r['guidance_scale']:g}): " + "; ".join(heads))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
