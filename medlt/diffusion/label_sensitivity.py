"""Label sensitivity: does a trained generator's label steer what it draws?

A conditional generator that ignores its label is invisible until a classifier is trained on its
output. This diagnostic asks the checkpoint directly, class by class, and needs no data and no judge.

For each class k it compares a *base* condition with a *flipped* one that asks for k:

- single-label: base = the most frequent training class (the next most frequent when k is that class),
  flipped = k: "asked for k instead of the head class";
- multi-label: base = "no finding" as the training data writes it, flipped = k alone. Where the label
  space has a "No Finding" class (NIH-CXR-LT, MIMIC-CXR-LT), no finding is that class alone: the
  all-zero vector never occurs in those training sets, so a base of zeros would measure movement away
  from a condition the model never saw. For k = "No Finding" itself the base is the most frequent other
  class alone. Without such a class (CT-RATE), no finding is the all-zero vector (a normal scan).
  Every base and flipped vector has one positive label (or none), the commonest kind of training row
  (the NIH phantom draws one primary class per image, so every one-class vector is a training vector).

Two measurements, each as a ratio to the same change made by the noise instead of the label, so 1
means "the label moves the output as much as a new seed does" and 0 means "the label is ignored":

1. samples: n images are drawn for the base and for the flipped condition from the same seeds (the
   same starting noise and sampler). `sample_label_change` = mean |x(flipped, s) − x(base, s)|;
   `sample_seed_change` = mean |x(base, s') − x(base, s)| for other seeds s'; ratio = label / seed.
2. predictions, per timestep t: the base samples are noised to t (the training forward process,
   noise ε), and the network's conditional prediction (ε or velocity, no guidance) is compared:
   `label_change` = mean |f(x_t, flipped) − f(x_t, base)|, `noise_change` = mean |f(x'_t, base) −
   f(x_t, base)| with x'_t the same image noised with another ε'; ratio = label / noise.

3. for designs that add the label to the time embedding (`time-embedding`, `adaptive-norm`), per
   timestep: `embedding_ratio` = ‖e(flipped) − e(base)‖ / ‖time embedding(t)‖, how large the label's
   change is against the signal it is added to (None for other designs).

Latent models are measured in their latent space (what the network sees). Everything is seeded.
`compare_markdown` puts several checkpoints' summaries side by side (e.g. two conditioning designs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medlt.data.labels import group_of_count, normalize_class_name
from medlt.utils.seeding import derive_seed

DEFINITION = ("per class: mean |output(flipped label) - output(base label)| over mean |output(other noise) - "
              "output(base)|, for samples from the same seeds (sample_ratio) and for the network's conditional "
              "prediction at timestep t (ratio); 0 = the label is ignored, 1 = it moves the output as much as "
              "new noise. Base: the most frequent class (single-label; the next most frequent for that class "
              "itself) or no finding (multi-label: the 'No Finding' class alone where the label space has one, "
              "else no label; for 'No Finding' itself the most frequent other class alone); each class's "
              "base and flipped labels are in per_class[...]['base'] and ['flipped'].")

NO_FINDING = "no finding"  # normalize_class_name of the class that marks an image without findings


def no_finding_index(names: Sequence[str]) -> int | None:
    """Index of the "No Finding" class (case, spaces, '_' and '-' ignored), None when there is none."""
    keys = [normalize_class_name(n) for n in names]
    return keys.index(NO_FINDING) if NO_FINDING in keys else None


def _head_order(train_class_counts: Sequence[int]) -> list[int]:
    return sorted(range(len(train_class_counts)), key=lambda c: (-int(train_class_counts[c]), c))


def base_and_flipped(k: int, num_classes: int, multi_label: bool, train_class_counts: Sequence[int],
                     n: int, no_finding: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(base, flipped) label batches of n rows asking for "not k" and "k" (see the module docstring).
    `no_finding`: index of the label space's "No Finding" class (multi-label; `no_finding_index`)."""
    if not multi_label:
        order = _head_order(train_class_counts)
        head = order[0] if order[0] != k else order[1]
        return torch.full((n,), head, dtype=torch.int64), torch.full((n,), k, dtype=torch.int64)
    base = torch.zeros(n, num_classes)
    if no_finding is not None:
        other = next((c for c in _head_order(train_class_counts) if c != no_finding), None)
        on = no_finding if k != no_finding else other
        if on is not None:
            base[:, on] = 1.0
    flipped = torch.zeros(n, num_classes)
    flipped[:, k] = 1.0
    return base, flipped


def _positives(names: Sequence[str], row: torch.Tensor, multi_label: bool) -> list[str]:
    """Class names a label row asks for ([] = no label set)."""
    if not multi_label:
        return [names[int(row)]]
    return [names[i] for i in range(len(names)) if float(row[i]) > 0]


def mean_abs_change(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


def _noised(scheduler, x0: torch.Tensor, t: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    from medlt.diffusion.rflow import is_rflow

    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    dtype = torch.float32 if is_rflow(scheduler) else torch.long
    ts = torch.full((x0.shape[0],), t, dtype=dtype, device=x0.device)
    return scheduler.add_noise(original_samples=x0, noise=noise, timesteps=ts), ts


@torch.no_grad()
def label_sensitivity(gen, *, per_class: int = 4, timesteps: Sequence[int] = (100, 500, 900), seed: int = 0,
                      guidance_scale: float = 1.0, num_inference_steps: int = 10, sampler: str | None = None,
                      group_thresholds: Sequence[int] = (100, 1000), progress=None) -> dict:
    """Per-class label sensitivity of a loaded generator (medlt.diffusion.sample.load_generator).
    `progress(k)` is called after each class. Returns a JSON-ready dict (see the module docstring)."""
    if per_class < 1:
        raise ValueError("per_class must be >= 1")
    ls = gen.label_space
    if not ls.multi_label and ls.num_classes < 2:
        raise ValueError("a single-label model needs at least 2 classes to flip between")
    T = int(gen.recipe.diffusion.num_train_timesteps)
    bad = [t for t in timesteps if not 0 <= int(t) < T]
    if bad:
        raise ValueError(f"timesteps must lie in [0, {T}) (the model's num_train_timesteps), got {bad}")
    draw = getattr(gen, "generate_latents", gen.generate)  # latent models: the network's own space
    model, device = gen.model, gen.device
    counts = list(gen.train_class_counts)
    per: dict[str, dict] = {}
    nf = no_finding_index(ls.names) if ls.multi_label else None
    for k, name in enumerate(ls.names):
        base, flipped = base_and_flipped(k, ls.num_classes, ls.multi_label, counts, per_class, no_finding=nf)
        seeds = [derive_seed(seed, "label-sensitivity", name, i) for i in range(per_class)]
        other = [derive_seed(seed, "label-sensitivity-other-seed", name, i) for i in range(per_class)]
        kw = {"guidance_scale": guidance_scale, "num_inference_steps": num_inference_steps, "sampler": sampler}
        x_base, x_flip, x_other = draw(base, seeds, **kw), draw(flipped, seeds, **kw), draw(base, other, **kw)
        lab = mean_abs_change(x_flip, x_base)
        sd = mean_abs_change(x_other, x_base)
        entry = {"group": group_of_count(int(counts[k]), tuple(group_thresholds)), "train_count": int(counts[k]),
                 "n": per_class, "base": _positives(ls.names, base[0], ls.multi_label),
                 "flipped": _positives(ls.names, flipped[0], ls.multi_label),
                 "sample_label_change": lab, "sample_seed_change": sd,
                 "sample_ratio": lab / sd if sd > 0 else None, "per_timestep": {}}
        x0 = x_base.to(device)
        yb, yf = base.to(device), flipped.to(device)
        for t in timesteps:
            g = torch.Generator().manual_seed(derive_seed(seed, "label-sensitivity-noise", name, int(t)))
            x_t, ts = _noised(gen.scheduler, x0, int(t), g)
            x_t2, _ = _noised(gen.scheduler, x0, int(t), g)
            f_base = model(x_t, ts, yb)
            d_label = mean_abs_change(model(x_t, ts, yf), f_base)
            d_noise = mean_abs_change(model(x_t2, ts, yb), f_base)
            emb = model.label_embedding_ratio(yf, yb, ts) if hasattr(model, "label_embedding_ratio") else None
            entry["per_timestep"][str(int(t))] = {"label_change": d_label, "noise_change": d_noise,
                                                   "ratio": d_label / d_noise if d_noise > 0 else None,
                                                   "embedding_ratio": None if emb is None else float(emb.mean())}
        per[name] = entry
        if progress is not None:
            progress(k)
    return {"definition": DEFINITION, "multi_label": ls.multi_label,
            "base": base_description(ls.names, ls.multi_label), "conditioning": getattr(model, "conditioning", None), "per_class": per,
            "timesteps": [int(t) for t in timesteps], "summary": summarise(per, [int(t) for t in timesteps])}


def base_description(names: Sequence[str], multi_label: bool) -> str:
    """The base condition in words, as the reports state it."""
    if not multi_label:
        return "the most frequent training class (for that class itself the next most frequent); flipped: the class"
    nf = no_finding_index(names)
    if nf is None:
        return "no finding (no label set); flipped: the class alone"
    return (f"'{names[nf]}' alone (for '{names[nf]}' itself the most frequent other class alone); "
            "flipped: the class alone")


def summarise(per: dict[str, dict], timesteps: Sequence[int]) -> dict:
    """Means of the ratios over all classes and per group."""
    out = {}
    groups = ["all", *sorted({e["group"] for e in per.values()}, key=["head", "medium", "tail"].index)]
    for g in groups:
        rows = [e for e in per.values() if g == "all" or e["group"] == g]
        s = [e["sample_ratio"] for e in rows if e["sample_ratio"] is not None]
        entry = {"classes": len(rows), "sample_ratio": sum(s) / len(s) if s else None}
        for t in timesteps:
            r = [e["per_timestep"][str(t)]["ratio"] for e in rows if e["per_timestep"][str(t)]["ratio"] is not None]
            entry[f"ratio_t{t}"] = sum(r) / len(r) if r else None
        e = [x["per_timestep"][str(t)].get("embedding_ratio") for x in rows for t in timesteps]
        e = [v for v in e if v is not None]
        entry["embedding_ratio"] = sum(e) / len(e) if e else None
        out[g] = entry
    return out


def render_markdown(rep: dict) -> str:
    ts = rep["timesteps"]
    head = ["class", "group", "train count", "sample label / seed change", *[f"prediction ratio t={t}" for t in ts]]
    lines = ["# Label sensitivity", "",
             "How far asking for a class moves the generator's output, relative to a new seed (samples) or new "
             "noise (the network's prediction at timestep t). 0 = the label is ignored; 1 = as much as the noise. "
             + f"Base condition: {rep['base']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for name, e in rep["per_class"].items():
        lines.append(f"| {name} | {e['group']} | {e['train_count']} | {fmt(e['sample_ratio'])} | "
                     + " | ".join(fmt(e["per_timestep"][str(t)]["ratio"]) for t in ts) + " |")
    lines += ["", "| scope | classes | sample label / seed change | "
              + " | ".join(f"prediction ratio t={t}" for t in ts) + " | label / time embedding |",
              "|" + "---|" * (4 + len(ts))]
    for g, e in rep["summary"].items():
        lines.append(f"| {g} | {e['classes']} | {fmt(e['sample_ratio'])} | "
                     + " | ".join(fmt(e[f"ratio_t{t}"]) for t in ts) + f" | {fmt(e.get('embedding_ratio'))} |")
    return "\n".join(lines) + "\n"


def compare_markdown(reports: dict[str, dict], differing_keys: Sequence[str] = ()) -> str:
    """Several checkpoints' group summaries side by side (name -> report of `label_sensitivity`);
    `differing_keys`: the model-defining recipe keys on which the checkpoints differ."""
    first = next(iter(reports.values()))
    ts = first["timesteps"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    head = ["checkpoint", "conditioning", "step", "scope", "sample label / seed change",
            *[f"prediction ratio t={t}" for t in ts], "label / time embedding"]
    lines = ["# Label sensitivity, side by side", "",
             "Same measurements, seeds and conditions for every checkpoint (0 = the label is ignored). "
             f"Base condition: {first['base']}."
             + (f" The checkpoints differ in: {', '.join(differing_keys)} (each taken from its checkpoint)."
                if differing_keys else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rep in reports.items():
        for g, e in rep["summary"].items():
            lines.append(f"| {name} | {rep.get('conditioning') or '–'} | {rep.get('step', '–')} | {g} | "
                         f"{fmt(e['sample_ratio'])} | " + " | ".join(fmt(e.get(f"ratio_t{t}")) for t in ts)
                         + f" | {fmt(e.get('embedding_ratio'))} |")
    return "\n".join(lines) + "\n"
