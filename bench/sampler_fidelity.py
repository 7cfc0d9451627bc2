"""Class fidelity of the deterministic samplers against their step count and x̂0 clip mode, on the
CPU bench's phantom and generator budget (issue: "fix the deterministic samplers that ruin guided
samples at many steps").

For each generator budget (--train-steps) and generator seed (--seeds) it trains, or reuses, a plain
generator from `recipes/phantom/bench_cpu.yaml` (the `medlt bench --preset cpu` recipe; the same
training call as a bench generator cell), builds, or reuses, the phantom oracle (`medlt oracle`, the
bench's judge: a classifier trained on a balanced phantom of another seed), then for every sampler
(--samplers) x step count (--steps) x mode (--modes) generates the same balanced probe set (the
bench's probe: `--per-class` images of every class, the bench's probe seeds, medlt.bench.probe) with
`medlt synth`'s code and judges it with the oracle (medlt.classify.reference.class_fidelity_of_synthetic,
what `medlt evaluate` reports as class fidelity). Fidelity = share of a class's images the oracle
assigns to it; "all" is the mean over classes, head / medium / tail the means over the group's
classes (groups from the real training counts, data.group_thresholds); 95% intervals are percentile
bootstrap intervals over the probe images, resampled within each class (medlt.metrics.bootstrap).

Modes: legacy, consistent, dynamic, none (`sampling.x0_clip`, docs/methods.md), each optionally
followed by `+rescale` (`sampling.guidance_rescale` = --rescale) and/or `+interval`
(`sampling.guidance_interval` = --interval). Everything else comes from the recipe (guidance
sampling.guidance_scale = 1.6 unless --guidance).

    OMP_NUM_THREADS=2 python bench/sampler_fidelity.py --out runs/sampler-fidelity
    OMP_NUM_THREADS=2 python bench/sampler_fidelity.py --out runs/sampler-fidelity --train-steps 1000,3000 --seeds 0,1
    OMP_NUM_THREADS=1 python bench/sampler_fidelity.py --smoke --out /tmp/sf-smoke   # end-to-end check, tiny sizes

Outputs under --out: phantom/ (unless --phantom), oracle/, gen-t<steps>-s<seed>/ (generator runs),
probes/<config>/ (the judged images), rows/<config>.json (one judged configuration each), and
sampler_fidelity.json + sampler_fidelity.md (the table). Re-running resumes: finished generators,
the oracle, probe sets and rows are reused; a row is recomputed when its checkpoint or oracle changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GROUP_COLUMNS = ("all", "head", "medium", "tail")
CLIP_MODES = ("legacy", "consistent", "dynamic", "none")
DEFAULT_MODES = "legacy,consistent,dynamic,consistent+rescale"
SMOKE = {"train_steps": "3", "steps": "2,3", "per_class": 2, "oracle_per_class": 4, "oracle_epochs": 1, "boot": 20,
         "phantom_images": 60, "image_size": 16,
         "sets": ["data.group_thresholds=[3,6]", "training.per_rank_batch_size=4", "classifier.per_rank_batch_size=16",
                  "training.checkpoint_every_steps=2"]}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/sampler_fidelity.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="Output folder (resumable).")
    p.add_argument("--recipe", type=Path, default=REPO / "recipes" / "phantom" / "bench_cpu.yaml",
                   help="Generator recipe (default: recipes/phantom/bench_cpu.yaml).")
    p.add_argument("--phantom", type=Path, default=None,
                   help="An existing `medlt phantom` folder (default: OUT/phantom, written like `make bench-evidence`: "
                        "nih-cxr-lt, 32 px, seed 0).")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="Judge this generator (run folder or .pt) instead of training one (--train-steps and --seeds "
                        "are then ignored).")
    p.add_argument("--train-steps", default="1000", help="Generator budgets, comma-separated (default 1000).")
    p.add_argument("--seeds", default="0", help="Generator seeds, comma-separated (default 0).")
    p.add_argument("--samplers", default="ddim,dpm++", help="Samplers, comma-separated (default ddim,dpm++).")
    p.add_argument("--steps", default="10,25,50,100", help="Sampling step counts (default 10,25,50,100).")
    p.add_argument("--modes", default=DEFAULT_MODES,
                   help=f"Modes: {'|'.join(CLIP_MODES)}, optionally +rescale and/or +interval (default {DEFAULT_MODES}).")
    p.add_argument("--per-class", type=int, default=20, help="Probe images per class (default 20).")
    p.add_argument("--guidance", type=float, default=None, help="Guidance scale ω (default: the recipe's).")
    p.add_argument("--rescale", type=float, default=0.7, help="φ of the +rescale modes (default 0.7).")
    p.add_argument("--interval", default="0.28,5.42",
                   help="lo,hi noise levels σ/α of the +interval modes (hi 'none': no upper end; default 0.28,5.42).")
    p.add_argument("--quantile", type=float, default=0.995, help="Dynamic threshold quantile (default 0.995).")
    p.add_argument("--oracle-per-class", type=int, default=60, help="Oracle phantom images per class (default 60, "
                   "as --preset cpu).")
    p.add_argument("--oracle-epochs", type=int, default=10, help="Oracle epochs (default 10, as --preset cpu).")
    p.add_argument("--boot", type=int, default=1000, help="Bootstrap resamples of the intervals (default 1000).")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="Device (default cpu).")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="Recipe override (repeatable), as `medlt --set`.")
    p.add_argument("--smoke", action="store_true",
                   help="Tiny end-to-end check: a 60-image 16 px phantom, 3 training steps, 2 images per class, "
                        "steps 2,3, a 1-epoch oracle.")
    a = p.parse_args(argv)
    if a.smoke:
        a.train_steps, a.steps, a.per_class = SMOKE["train_steps"], SMOKE["steps"], SMOKE["per_class"]
        a.oracle_per_class, a.oracle_epochs, a.boot = SMOKE["oracle_per_class"], SMOKE["oracle_epochs"], SMOKE["boot"]
        a.sets = [*SMOKE["sets"], f"data.image_size=[{SMOKE['image_size']},{SMOKE['image_size']}]", *a.sets]
    try:
        a.train_steps = _ints(a.train_steps, "--train-steps")
        a.seeds = _ints(a.seeds, "--seeds", low=0)
        a.steps = _ints(a.steps, "--steps")
        a.samplers = [s.strip() for s in a.samplers.split(",") if s.strip()]
        a.modes = [parse_mode(m) for m in a.modes.split(",") if m.strip()]
        lo, hi = (v.strip() for v in a.interval.split(","))
        a.interval = (float(lo), None if hi.lower() in ("none", "null") else float(hi))
    except ValueError as e:
        p.error(str(e))
    if a.per_class < 1:
        p.error("--per-class must be >= 1")
    return a


def _ints(text: str, option: str, low: int = 1) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option}: comma-separated integers, got '{text}'") from None
    if not vals or min(vals) < low:
        raise ValueError(f"{option}: integers >= {low}, got '{text}'")
    return vals


def parse_mode(text: str) -> str:
    parts = text.strip().split("+")
    if parts[0] not in CLIP_MODES or not set(parts[1:]) <= {"rescale", "interval"} or len(set(parts)) != len(parts):
        raise ValueError(f"--modes: '{text}' is not one of {'|'.join(CLIP_MODES)} with optional +rescale/+interval")
    return text.strip()


def mode_sets(mode: str, args) -> list[str]:
    """The recipe overrides of a mode."""
    parts = mode.split("+")
    sets = [f"sampling.x0_clip={parts[0]}", f"sampling.dynamic_threshold_quantile={args.quantile}"]
    if "rescale" in parts:
        sets.append(f"sampling.guidance_rescale={args.rescale}")
    if "interval" in parts:
        lo, hi = args.interval
        sets.append(f"sampling.guidance_interval=[{lo}, {'null' if hi is None else hi}]")
    return sets


def config_recipe(recipe, sampler: str, steps: int, mode: str, args):
    """`recipe` with one configuration's sampler, steps and mode (validated as a recipe: a mode that
    does not fit is one RecipeError line)."""
    from medlt.recipe import recipe_from_resolved, recipe_to_dict
    from medlt.recipe.load import apply_overrides

    d = recipe_to_dict(recipe)
    apply_overrides(d, [f"sampling.sampler={sampler}", f"sampling.num_inference_steps={steps}",
                        *mode_sets(mode, args)], Path.cwd())
    return recipe_from_resolved(d)


# ------------------------------------------------------------------------------- the pieces

def prepare_phantom(args) -> Path:
    """--phantom, or OUT/phantom written once (the bench-evidence phantom; smaller with --smoke)."""
    from medlt.phantom import write_phantom
    from medlt.phantom.write import MARKER

    if args.phantom is not None:
        return args.phantom.resolve()
    out = (args.out / "phantom").resolve()
    if not (out / MARKER).is_file():
        kw = ({"num_images": SMOKE["phantom_images"], "image_size": SMOKE["image_size"], "imbalance_ratio": 0.05,
               "per_class_val": 1, "per_class_test": 2} if args.smoke else {"image_size": 32})
        print(f"[sampler-fidelity] writing the phantom to {out}", file=sys.stderr)
        write_phantom("nih-cxr-lt", out, seed=0, **kw)
    return out


def base_recipe(args, phantom: Path, train_steps: int):
    from medlt.recipe import load_recipe

    sets = [f"data.root={phantom}", f"data.labels={phantom}", f"training.max_steps={train_steps}",
            f"training.device={args.device}", f"classifier.device={args.device}", *args.sets]
    if args.guidance is not None:
        sets.append(f"sampling.guidance_scale={args.guidance}")
    return load_recipe(args.recipe, sets)


def ensure_generator(recipe, seed: int, run_dir: Path) -> Path:
    """The plain generator of `seed` (bench cell: recipe with that seed, no regularizer), trained or
    resumed to recipe.training.max_steps, or reused when it is there."""
    from medlt.bench.cells import with_changes
    from medlt.diffusion.train import CHECKPOINT, train
    from medlt.utils.checkpoint import load_checkpoint

    r = with_changes(recipe, seed=seed, method="plain")
    ckpt = run_dir / CHECKPOINT
    if ckpt.is_file() and int(load_checkpoint(ckpt).get("step", -1)) == r.training.max_steps:
        return ckpt
    print(f"[sampler-fidelity] training {run_dir.name} ({r.training.max_steps} steps)", file=sys.stderr)
    return train(r, run_dir, resume=ckpt.is_file())


def ensure_oracle(recipe, out: Path, per_class: int, epochs: int) -> Path:
    from medlt.classify.oracle import build_oracle

    if not (out / "oracle.json").is_file():
        r = recipe.model_copy(update={"classifier": recipe.classifier.model_copy(update={"epochs": epochs})})
        print("[sampler-fidelity] training the phantom oracle", file=sys.stderr)
        build_oracle(r, out, per_class=per_class, show_progress=False)
    return out


def group_intervals(report: dict, names, groups, n_boot: int, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals of the mean class fidelity (all) and the group means, the
    probe images resampled within each class (every class keeps its n)."""
    from medlt.metrics.bootstrap import percentile_interval, resampled

    per = report["per_class"]
    k = len(names)
    strata, hits = [], []
    for c, name in enumerate(names):
        n, h = int(per[name]["n_synthetic"]), int(per[name]["assigned_to_intended"])
        strata += [c] * n
        hits += [1.0] * h + [0.0] * (n - h)
    strata, hits = np.asarray(strata), np.asarray(hits)
    onehot = (strata[:, None] == np.arange(k)[None]).astype(np.float64)
    n_c = onehot.sum(axis=0)
    have = n_c > 0
    cols = {"all": np.flatnonzero(have)}
    cols.update({g: np.flatnonzero(have & (np.asarray(groups) == g)) for g in GROUP_COLUMNS[1:]})

    def fn(w):
        fid = ((w * hits) @ onehot) / np.where(have, n_c, 1.0)
        return {g: (fid[:, idx].mean(axis=1) if idx.size else np.full(w.shape[0], np.nan)) for g, idx in cols.items()}

    res = resampled(strata, n_boot, seed, fn)
    return {g: [float(v) for v in percentile_interval(res[g])] for g in GROUP_COLUMNS}


def judge_config(recipe, gen, oracle, groups, probe_dir: Path, per_class: int, device: str) -> dict:
    """Generate the probe set of `recipe`'s sampling settings into `probe_dir` (`medlt synth`,
    resumable) and judge it: the class fidelity report."""
    from medlt.bench.probe import probe_inputs
    from medlt.classify.reference import class_fidelity_of_synthetic
    from medlt.synth.generate import run_synth

    probe_recipe, probe_table, quota = probe_inputs(recipe, per_class)
    run_synth(probe_recipe, probe_dir, generator=gen, table=probe_table, quota=quota, device=device,
              show_progress=False)
    return class_fidelity_of_synthetic(recipe, probe_dir, oracle, list(groups), batch_size=256)


def _point(report: dict) -> dict[str, float | None]:
    g = report["group_mean_fidelity"]
    return {"all": report["mean_class_fidelity"], **{k: g.get(k) for k in GROUP_COLUMNS[1:]}}


# ------------------------------------------------------------------------------------ tables

def _f(v, nd=3) -> str:
    return "n/a" if v is None or v != v else f"{v:.{nd}f}"


def markdown(result: dict) -> str:
    info, rows = result["info"], result["rows"]
    lines = [f"# Sampler fidelity ({info['recipe']}, guidance {info['guidance_scale']:g}, {info['per_class']} probe "
             f"images per class, oracle {info['oracle']})", "",
             "Class fidelity under the phantom oracle (share of a class's probe images assigned to it): mean over "
             "classes (all) and over each group's classes, 95% bootstrap intervals over the probe images.", "",
             "| generator | sampler | steps | mode | all | head | medium | tail |",
             "|---|---|---:|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{_f(r['fidelity'][g])} [{_f(r['ci95'][g][0])}, {_f(r['ci95'][g][1])}]" for g in GROUP_COLUMNS]
        lines.append(f"| {r['generator']} | {r['sampler']} | {r['steps']} | {r['mode']} | " + " | ".join(cells) + " |")
    steps = sorted({r["steps"] for r in rows})
    lines += ["", "Mean class fidelity (all) by step count:", "",
              "| generator | sampler | mode | " + " | ".join(str(s) for s in steps) + " |",
              "|---|---|---|" + "---:|" * len(steps)]
    by = {}
    for r in rows:
        by.setdefault((r["generator"], r["sampler"], r["mode"]), {})[r["steps"]] = r["fidelity"]["all"]
    for (g, s, m), vals in by.items():
        lines.append(f"| {g} | {s} | {m} | " + " | ".join(_f(vals.get(n)) for n in steps) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------- main

def main(argv=None) -> dict:
    args = parse_args(argv)
    from medlt.classify.load import load_classifier
    from medlt.diffusion.sample import load_generator
    from medlt.report.write import json_safe
    from medlt.utils.atomic import atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    phantom = prepare_phantom(args)
    recipe0 = base_recipe(args, phantom, args.train_steps[0])
    oracle_dir = ensure_oracle(recipe0, args.out / "oracle", args.oracle_per_class, args.oracle_epochs)
    oracle = load_classifier(oracle_dir, device=args.device)
    if args.checkpoint is not None:
        generators = [("given", recipe0, args.checkpoint)]
    else:
        generators = []
        for t in args.train_steps:
            r = base_recipe(args, phantom, t)
            for s in args.seeds:
                name = f"t{t}-s{s}"
                generators.append((name, r, ensure_generator(r, s, args.out / f"gen-{name}")))
    rows = []
    for name, recipe, ckpt in generators:
        gen = load_generator(ckpt, device=args.device)
        ls = gen.label_space
        groups = ls.groups(gen.train_class_counts, tuple(recipe.data.group_thresholds))
        for sampler in args.samplers:
            for steps in args.steps:
                for mode in args.modes:
                    key = f"{name}-{sampler}-{steps}-{mode}".replace("+", "_")
                    row_file = args.out / "rows" / f"{key}.json"
                    if row_file.is_file():
                        row = json.loads(row_file.read_text())
                        if (row.get("checkpoint_sha256") == gen.checkpoint_sha256
                                and row.get("oracle_sha256") == oracle.checkpoint_sha256
                                and row.get("per_class") == args.per_class):
                            rows.append(row)
                            continue
                    r = config_recipe(recipe, sampler, steps, mode, args)
                    t0 = time.perf_counter()
                    rep = judge_config(r, gen, oracle, groups, args.out / "probes" / key, args.per_class, args.device)
                    row = {"generator": name, "sampler": sampler, "steps": steps, "mode": mode,
                           "sampling": {k: v for k, v in r.sampling.model_dump(mode="json").items() if k != "batch_size"},
                           "fidelity": _point(rep), "ci95": group_intervals(rep, ls.names, groups, args.boot),
                           "n_probe": rep["n_synthetic"], "per_class": args.per_class,
                           "checkpoint_sha256": gen.checkpoint_sha256, "oracle_sha256": oracle.checkpoint_sha256,
                           "seconds": round(time.perf_counter() - t0, 2)}
                    atomic_write_text(row_file, json.dumps(json_safe(row), indent=1, allow_nan=False) + "\n")
                    print(f"[sampler-fidelity] {key}: all {_f(row['fidelity']['all'])} tail "
                          f"{_f(row['fidelity']['tail'])}", file=sys.stderr)
                    rows.append(json_safe(row))
    oracle_info = json.loads((oracle_dir / "oracle.json").read_text())
    result = {
        "info": {"recipe": str(args.recipe), "sets": args.sets, "phantom": str(phantom),
                 "guidance_scale": recipe0.sampling.guidance_scale, "per_class": args.per_class,
                 "train_steps": args.train_steps, "seeds": args.seeds, "rescale": args.rescale,
                 "interval": list(args.interval), "quantile": args.quantile, "bootstrap_resamples": args.boot,
                 "oracle": oracle_info.get("oracle"), "oracle_test": oracle_info.get("test_on_evaluated_phantom", {})
                 .get("balanced_accuracy"), "device": args.device, "smoke": bool(args.smoke)},
        "rows": rows,
    }
    atomic_write_text(args.out / "sampler_fidelity.json", json.dumps(json_safe(result), indent=1, allow_nan=False) + "\n")
    md = markdown(result)
    atomic_write_text(args.out / "sampler_fidelity.md", md)
    print(md)
    return result


if __name__ == "__main__":
    main()
