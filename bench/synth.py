"""Synthesis benchmarks, in two clearly separate sections (`--section`).

quality (default): speed AND quality of every sampler side by side in one run, on phantom generators
   trained long enough for class-dependent samples (recipes/phantom/nih_cxr_lt.yaml: 32 px, 1000
   steps by default: the evidence benchmark's generator budget, head fidelity about 0.5 against 0.05). One ε-prediction generator serves 1000-step ancestral DDPM (the reference),
   DDIM-50, DDIM-25, DPM++-20 and DPM++-10; one rectified-flow generator, trained on the same data
   with the same steps (diffusion.objective rflow), serves rflow-30 and rflow-10. Every row samples
   the same `--per-class` images of every class (same seeds) and reports images/s, its speed-up over
   the reference, and class-matched FID (overall and per group, medlt.metrics.feature_stats) against
   the real training split, with one fixed extractor: the penultimate features of a phantom oracle
   (`medlt oracle`: a classifier trained on a balanced phantom from another seed). The goal column
   marks samplers at >= 50x the reference whose FID is within the reference's 95% interval (<= its
   upper end).

       OMP_NUM_THREADS=2 python bench/synth.py                 # full size (~45 min on 2 CPU cores,
                                                               # most of it the 1000-step reference)
       OMP_NUM_THREADS=1 python bench/synth.py --smoke         # end-to-end check, tiny settings

throughput: images/s of DDIM-50 with batched guidance against 1000-step ancestral DDPM on one
   random UNet, and `medlt synth` under `torchrun --nproc_per_node 2` against 1 process (CPU, gloo),
   same recipe, checkpoint and plan (synth time as reported by rank 0; process start-up excluded).

       OMP_NUM_THREADS=1 python bench/synth.py --section throughput [--size 32] [--batch 8]

Each section prints one table. On a shared 2-core machine the torchrun ratio is bounded by the
cores actually free.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAMES = ("common", "rare", "rarest", "rarer")
TINY_MODEL = {"channels": [16, 32], "attention_levels": [False, False], "num_res_blocks": 1,
              "num_head_channels": 8, "norm_num_groups": 8}


def make_dataset(root: Path, size: int, synth_images: int) -> Path:
    """Real PNGs + manifest + recipe YAML so that to_head plans `synth_images` images."""
    import pandas as pd
    import yaml

    from medlt.data import io

    k = len(NAMES)
    head = int(np.ceil(synth_images / (k - 1))) + 1
    per_class = [head, 1, 1, 1]
    while sum(head - c for c in per_class) > synth_images:
        per_class[1] += 1
    rng = np.random.default_rng(0)
    rows = []
    for split, counts in (("train", per_class), ("balanced-val", [1] * k), ("balanced-test", [1] * k),
                          ("test", [1] * k)):
        for c, n in enumerate(counts):
            for _ in range(n):
                rel = f"images/r{len(rows):05d}.png"
                io.write_png(root / rel, rng.random((size, size)))
                rows.append({"image": rel, "patient_id": f"p{len(rows)}", "split": split,
                             **{nm: int(j == c) for j, nm in enumerate(NAMES)}})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    rec = {"name": "bench-synth", "seed": 0,
           "data": {"format": "manifest", "root": ".", "labels": "manifest.csv", "classes": list(NAMES),
                    "image_size": [size, size]},
           "model": TINY_MODEL, "sampling": {"guidance_scale": 1.0}}
    (root / "recipe.yaml").write_text(yaml.safe_dump(rec))
    return root / "recipe.yaml"


def make_checkpoint(recipe_path: Path, path: Path) -> Path:
    from medlt.data.labels import LabelSpace
    from medlt.diffusion.unet import build_model
    from medlt.recipe import load_recipe, recipe_to_dict
    from medlt.utils.checkpoint import save_checkpoint

    recipe = load_recipe(recipe_path)
    ls = LabelSpace(NAMES, multi_label=False)
    torch.manual_seed(0)
    sd = build_model(recipe.model, ls).state_dict()
    return save_checkpoint(path, {"model": sd, "ema": sd, "step": 0, "recipe": recipe_to_dict(recipe),
                                  "label_space": ls.to_dict(), "train_class_counts": [1] * len(NAMES)})


def bench_samplers(ckpt: Path, batch: int, ddim_steps: int, ddpm_steps: int, guidance: float) -> list[tuple]:
    """throughput section: DDIM vs ancestral DDPM on one random UNet."""
    from medlt.diffusion.sample import load_generator

    gen = load_generator(ckpt)
    labels = torch.arange(batch) % len(NAMES)
    seeds = list(range(batch))
    rows = []
    gen.generate(labels[:2], seeds[:2], guidance_scale=guidance, num_inference_steps=2)  # warm-up
    for name, sampler, steps in ((f"DDIM-{ddim_steps}, batched guidance", "ddim", ddim_steps),
                                 (f"DDPM-{ddpm_steps} ancestral (reference)", "ddpm", ddpm_steps)):
        t0 = time.perf_counter()
        gen.generate(labels, seeds, guidance_scale=guidance, num_inference_steps=steps, sampler=sampler,
                     batch_size=batch)
        dt = time.perf_counter() - t0
        rows.append((name, batch, dt, batch / dt))
    return rows


def bench_torchrun(recipe: Path, ckpt: Path, work: Path, steps: int, batch: int) -> list[tuple]:
    rows = []
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for nproc in (1, 2):
        out = work / f"synth_np{nproc}"
        cmd = [str(torchrun), "--standalone", f"--nproc_per_node={nproc}", "-m", "medlt", "synth",
               str(recipe), "--checkpoint", str(ckpt), "--out", str(out), "--steps", str(steps),
               "--batch-size", str(batch), "--device", "cpu"]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
        if r.returncode != 0:
            raise SystemExit(f"torchrun nproc={nproc} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        m = re.search(r"([0-9.]+) s\s*$", r.stdout.strip().split("file(s) written")[1].splitlines()[0])
        dt = float(m.group(1))
        n = len(list(out.rglob("*.png")))
        rows.append((f"medlt synth, torchrun x{nproc} (CPU, gloo)", n, dt, n / dt))
    a = {p.relative_to(work / "synth_np1"): p.read_bytes() for p in (work / "synth_np1").rglob("*.png")}
    b = {p.relative_to(work / "synth_np2"): p.read_bytes() for p in (work / "synth_np2").rglob("*.png")}
    rows.append(("(1-process and 2-process outputs byte-identical)", a == b, None, None))
    return rows


# ----------------------------------------------------------------------------- section: quality

QUALITY_ROWS = (  # (label, generator, sampler, steps); steps None = the reference's --ref-steps
    ("DDPM ancestral (reference)", "epsilon", "ddpm", None),
    ("DDIM-50", "epsilon", "ddim", 50),
    ("DDIM-25", "epsilon", "ddim", 25),
    ("DPM++-20", "epsilon", "dpm++", 20),
    ("DPM++-10", "epsilon", "dpm++", 10),
    ("rflow-30", "rflow", "rflow", 30),
    ("rflow-10", "rflow", "rflow", 10),
)


def _quality_recipes(phantom: Path, args) -> dict:
    from medlt.recipe import load_recipe

    sets = [f"data.root={phantom}", f"data.labels={phantom}", f"training.max_steps={args.train_steps}",
            "training.sample_grid_every_steps=0", f"training.checkpoint_every_steps={args.train_steps}",
            f"training.device={args.device}", f"classifier.epochs={args.oracle_epochs}",
            f"classifier.device={args.device}"]
    base = REPO / "recipes" / "phantom" / "nih_cxr_lt.yaml"
    return {"epsilon": load_recipe(base, sets),
            "rflow": load_recipe(base, sets + ["diffusion.objective=rflow", "sampling.sampler=rflow"])}


def bench_quality(args, work: Path) -> tuple[list[dict], dict]:
    from medlt.classify.load import load_classifier
    from medlt.classify.oracle import build_oracle
    from medlt.classify.reference import reference_name
    from medlt.data.loaders import build_dataloader
    from medlt.diffusion.sample import load_generator
    from medlt.diffusion.train import train
    from medlt.metrics.feature_stats import ClassFeatureStats
    from medlt.phantom import write_phantom
    from medlt.utils.seeding import derive_seed

    phantom = work / "phantom"
    write_phantom("nih-cxr-lt", phantom, num_images=args.phantom_images, image_size=32, seed=0)
    recipes = _quality_recipes(phantom, args)
    gens = {}
    for objective, rec in recipes.items():
        print(f"[quality] training the {objective} generator ({args.train_steps} steps)", file=sys.stderr)
        gens[objective] = load_generator(train(rec, work / f"run_{objective}"), device=args.device)
    print("[quality] training the phantom oracle (feature extractor)", file=sys.stderr)
    build_oracle(recipes["epsilon"], work / "oracle", per_class=args.oracle_per_class, show_progress=False)
    ref = load_classifier(work / "oracle", device=args.device)
    ls = gens["epsilon"].label_space
    groups = ls.groups(gens["epsilon"].train_class_counts, tuple(recipes["epsilon"].data.group_thresholds))
    real = [(ref.features(b["image"]), b["label"])
            for b in build_dataloader(recipes["epsilon"], "train", 64, shuffle=False)]
    k = ls.num_classes
    labels = torch.arange(k).repeat_interleave(args.per_class)
    seeds = [derive_seed(0, "bench-quality", int(c), i % args.per_class) for i, c in enumerate(labels)]
    rows = []
    for name, objective, sampler, steps in QUALITY_ROWS:
        steps = args.ref_steps if steps is None else steps
        gen = gens[objective]
        gen.generate(labels[:2], seeds[:2], guidance_scale=args.guidance, num_inference_steps=2, sampler=sampler)
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        x = gen.generate(labels, seeds, guidance_scale=args.guidance, num_inference_steps=steps, sampler=sampler,
                         batch_size=args.batch)
        if args.device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        stats = ClassFeatureStats(ls.names, groups, extractor_name=reference_name(ref),
                                  fid_samples_per_class=args.per_class, min_real_per_class=2,
                                  min_synthetic_per_class=2, seed=0)
        for f, y in real:
            stats.update("real", f, y)
        for s in range(0, len(x), 256):
            stats.update("synthetic", ref.features(x[s:s + 256]), labels[s:s + 256])
        res = stats.compute(kid_subset_size=args.per_class, kid_num_subsets=10,
                            bootstrap_replicates=args.fid_bootstrap)
        sc = res["scopes"]
        rows.append({"name": f"DDPM-{steps} ancestral (reference)" if sampler == "ddpm" else name,
                     "sampler": sampler, "steps": steps, "images": len(x), "seconds": dt, "ips": len(x) / dt,
                     "fid": sc["overall"]["fid"], "ci": sc["overall"]["fid_ci95"],
                     **{g: sc.get(f"group:{g}", {}).get("fid") for g in ("head", "medium", "tail")}})
        print(f"[quality] {rows[-1]['name']}: {len(x) / dt:.2f} img/s, FID {_f(rows[-1]['fid'])}", file=sys.stderr)
    info = {"extractor": reference_name(ref), "train_steps": args.train_steps, "per_class": args.per_class,
            "classes": k, "device": args.device}
    return rows, info


def _f(v, nd=2) -> str:
    return "n/a" if v is None or v != v else f"{v:.{nd}f}"


def print_quality(rows: list[dict], info: dict, guidance: float) -> None:
    from rich.console import Console
    from rich.table import Table

    ref = rows[0]
    hi = ref["ci"][1] if ref["ci"] else ref["fid"]
    t = Table(title=f"samplers vs {ref['name']} on the NIH phantom (32 px, {info['classes']} classes x "
                    f"{info['per_class']} images, generators trained {info['train_steps']} steps, guidance "
                    f"{guidance:g}, device {info['device']}); class-matched FID vs the real training split, "
                    f"extractor {info['extractor']}")
    for c in ("sampler", "images/s", "speed-up", "FID overall [95% CI]", "FID head", "FID medium", "FID tail",
              ">= 50x and FID <= ref. CI upper"):
        t.add_column(c, justify="left" if c == "sampler" else "right")
    goal = []
    for r in rows:
        speed = r["ips"] / ref["ips"]
        ci = f" [{_f(r['ci'][0])}, {_f(r['ci'][1])}]" if r["ci"] else ""
        ok = r is not ref and speed >= 50 and r["fid"] is not None and hi is not None and r["fid"] <= hi
        if ok:
            goal.append(r["name"])
        t.add_row(r["name"], f"{r['ips']:.2f}", f"{speed:.1f}x", f"{_f(r['fid'])}{ci}", _f(r["head"]),
                  _f(r["medium"]), _f(r["tail"]), "" if r is ref else ("yes" if ok else "no"))

    Console(width=200).print(t)
    print(f"goal (>= 50x at FID within the reference's interval): {', '.join(goal) if goal else 'not met'}")


# -------------------------------------------------------------------------- section: throughput

def run_throughput(args) -> None:
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        recipe = make_dataset(work / "data", args.size, args.synth_images)
        ckpt = make_checkpoint(recipe, work / "run/checkpoints/last.pt")
        samp = bench_samplers(ckpt, args.batch, args.ddim_steps, args.ref_steps, args.guidance)
        tr = bench_torchrun(recipe, ckpt, work, args.synth_steps, args.batch)

    t = Table(title=f"synthesis throughput (CPU threads/process={torch.get_num_threads()}, "
                    f"image {args.size}x{args.size}, tiny random UNet)")
    for c in ("what", "images", "seconds", "images/s"):
        t.add_column(c, justify="left" if c == "what" else "right")
    for name, n, dt, ips in samp + tr:
        t.add_row(name, str(n), "" if dt is None else f"{dt:.2f}", "" if ips is None else f"{ips:.2f}")
    t.add_row(f"[b]ratio DDIM-{args.ddim_steps} / DDPM-{args.ref_steps}[/b]", "", "", f"[b]{samp[0][3] / samp[1][3]:.1f}x[/b]")
    t.add_row("[b]ratio torchrun x2 / x1[/b]", "", "", f"[b]{tr[1][3] / tr[0][3]:.2f}x[/b]")
    Console().print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--section", choices=("quality", "throughput"), default="quality")
    ap.add_argument("--smoke", action="store_true", help="quality: tiny settings that only check the script "
                    "end to end (numbers meaningless)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (quality)")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--ref-steps", type=int, default=1000, help="steps of the ancestral DDPM reference")
    ap.add_argument("--batch", type=int, default=None, help="images per generator call (quality 256, throughput 8)")
    q = ap.add_argument_group("quality")
    q.add_argument("--train-steps", type=int, default=1000)
    q.add_argument("--per-class", type=int, default=16, help="synthetic images per class and sampler")
    q.add_argument("--phantom-images", type=int, default=None, help="training images of the phantom (default: "
                   "the phantom's own default)")
    q.add_argument("--oracle-per-class", type=int, default=60)
    q.add_argument("--oracle-epochs", type=int, default=4)
    q.add_argument("--fid-bootstrap", type=int, default=200)
    t = ap.add_argument_group("throughput")
    t.add_argument("--size", type=int, default=32)
    t.add_argument("--ddim-steps", type=int, default=50)
    t.add_argument("--synth-images", type=int, default=48)
    t.add_argument("--synth-steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.section == "throughput":
        args.batch = args.batch or 8
        run_throughput(args)
        return
    args.batch = args.batch or 256
    if args.smoke:
        args.train_steps, args.per_class, args.ref_steps = 3, 2, 20
        args.phantom_images, args.oracle_per_class, args.oracle_epochs, args.fid_bootstrap = 120, 3, 1, 5
    os.environ.setdefault("MEDLT_PROGRESS", "off")
    with tempfile.TemporaryDirectory() as d:
        rows, info = bench_quality(args, Path(d))
    print_quality(rows, info, args.guidance)


if __name__ == "__main__":
    main()
