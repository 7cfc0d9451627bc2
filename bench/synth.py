"""Synthesis throughput, measured side by side in one run.

1. images/s of DDIM-50 with batched classifier-free guidance (conditional + unconditional rows in
   one forward) against the reference sampler, 1000-step ancestral DDPM, on the same randomly
   initialised model and the same batch of labels/seeds;
2. images/s of `medlt synth` under `torchrun --nproc_per_node 2` against `--nproc_per_node 1`
   (CPU, gloo), same recipe, checkpoint and plan (the time is the synth run itself, from plan to
   manifest, as reported by rank 0; process start-up is excluded).

    OMP_NUM_THREADS=1 python bench/synth.py [--size 32] [--batch 8] [--synth-images 48]

Prints a table with the ratios. On a shared 2-core machine the torchrun ratio is bounded by the
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--ddpm-steps", type=int, default=1000)
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--synth-images", type=int, default=48)
    ap.add_argument("--synth-steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        recipe = make_dataset(work / "data", args.size, args.synth_images)
        ckpt = make_checkpoint(recipe, work / "run/checkpoints/last.pt")
        samp = bench_samplers(ckpt, args.batch, args.ddim_steps, args.ddpm_steps, args.guidance)
        tr = bench_torchrun(recipe, ckpt, work, args.synth_steps, args.batch)

    t = Table(title=f"synthesis throughput (CPU threads/process={torch.get_num_threads()}, "
                    f"image {args.size}x{args.size}, tiny random UNet)")
    for c in ("what", "images", "seconds", "images/s"):
        t.add_column(c, justify="left" if c == "what" else "right")
    for name, n, dt, ips in samp + tr:
        t.add_row(name, str(n), "" if dt is None else f"{dt:.2f}", "" if ips is None else f"{ips:.2f}")
    t.add_row(f"[b]ratio DDIM-{args.ddim_steps} / DDPM-{args.ddpm_steps}[/b]", "", "", f"[b]{samp[0][3] / samp[1][3]:.1f}x[/b]")
    t.add_row("[b]ratio torchrun x2 / x1[/b]", "", "", f"[b]{tr[1][3] / tr[0][3]:.2f}x[/b]")
    Console().print(t)


if __name__ == "__main__":
    main()
