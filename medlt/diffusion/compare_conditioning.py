"""Compare the multi-label conditionings (multi-hot -> time embedding, + adaptive norms, or cross-attention
context) on a phantom: train each with the same recipe and steps, then report the class statistic
(nearest class-centroid agreement, finding correlation; see class_stats.py) and the training-step time
measured side by side (interleaved repeats, median).

    python -m medlt.diffusion.compare_conditioning RECIPE --out DIR [--steps N] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

MODES = ("time-embedding", "adaptive-norm", "cross-attention")


def step_times(recipe, label_space, modes, repeats: int = 5, shape: tuple[int, ...] | None = None) -> dict[str, float]:
    """Median seconds of one training step (forward, backward, AdamW) per conditioning mode, measured
    side by side: the same batch, interleaved repeats with the order reversed every other round.
    `shape` = (C, *spatial) the network sees (default: the recipe's in_channels and image size; give
    the latent shape for latent models)."""
    from medlt.diffusion.label_samplers import LabelBank
    from medlt.diffusion.objective import total_loss, training_terms
    from medlt.diffusion.schedule import build_scheduler
    from medlt.diffusion.unet import build_model

    k = label_space.num_classes
    b = recipe.training.per_rank_batch_size
    shape = tuple(shape) if shape is not None else (recipe.model.in_channels, *recipe.data.image_size)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((b, *shape), generator=g) * 2 - 1
    y = (torch.rand(b, k, generator=g) < 0.2).float()
    bank = LabelBank([1] * k, True, torch.eye(k))
    sched = build_scheduler(recipe.diffusion)
    models, opts = {}, {}
    for m in modes:
        cfg = recipe.model.model_copy(update={"multi_label_conditioning": m})
        models[m] = build_model(cfg, label_space)
        opts[m] = torch.optim.AdamW(models[m].parameters(), lr=1e-4)
    times = {m: [] for m in modes}
    for r in range(repeats + 1):
        for m in (modes if r % 2 else tuple(modes)[::-1]):
            t0 = time.perf_counter()
            st = training_terms(models[m], sched, [], x0, y, bank=bank, label_drop_prob=0.1,
                                generator=torch.Generator().manual_seed(r))
            opts[m].zero_grad()
            total_loss(st).backward()
            opts[m].step()
            if r:
                times[m].append(time.perf_counter() - t0)
    return {m: statistics.median(v) for m, v in times.items()}


def main(argv=None) -> None:
    from medlt.diffusion.class_stats import class_statistics, generated_by_class, real_images_by_class
    from medlt.diffusion.sample import load_generator
    from medlt.diffusion.train import train
    from medlt.recipe import load_recipe

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--per-class", type=int, default=8)
    ap.add_argument("--min-real", type=int, default=20, help="only classes with this many real images")
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    sets = list(args.set) + ([f"training.max_steps={args.steps}"] if args.steps else [])
    rows = {}
    real = None
    for mode in MODES:
        recipe = load_recipe(args.recipe, sets + [f"model.multi_label_conditioning={mode}"])
        run = Path(args.out) / mode
        ckpt = run / "checkpoints" / "last.pt"
        t0 = time.perf_counter()
        if not ckpt.exists():
            train(recipe, run)
        train_s = time.perf_counter() - t0
        gen = load_generator(ckpt)
        if real is None:
            real = real_images_by_class(recipe)
            classes = sorted(c for c in real if len(real[c]) >= args.min_real)
        w = recipe.sampling.guidance_scale if args.guidance is None else args.guidance
        g = generated_by_class(gen, classes, args.per_class, guidance_scale=w,
                               num_inference_steps=recipe.sampling.num_inference_steps)
        rows[mode] = class_statistics(g, {c: real[c] for c in classes}) | {"train_s": train_s}
    st = step_times(recipe, gen.label_space, MODES)
    print(f"{'conditioning':16} {'centroid_acc':>12} {'chance':>7} {'finding_corr':>12} {'step_ms':>8}")
    for mode in MODES:
        r = rows[mode]
        print(f"{mode:16} {r['centroid_accuracy']:12.3f} {r['chance']:7.3f} {r['finding_correlation']:12.3f} "
              f"{st[mode] * 1e3:8.1f}")


if __name__ == "__main__":
    main()
