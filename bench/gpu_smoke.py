"""GPU smoke benchmark (the Python part of bench/gpu_smoke.sh): one table of

- train-step time of the class-conditional UNet: fp32 vs bf16 autocast, MONAI flash attention
  (PyTorch scaled_dot_product_attention in every SABlock) off/on, channels_last, torch.compile
  off/on, and DDP on one GPU with NCCL (world size 1: the wrapper's overhead);
- synthesis images/s per sampler (ddpm-1000 ancestral, ddim-50/25, dpm++-20/10 on an ε-model,
  rflow-30/10 on a rectified-flow model of the same architecture), bf16, flash attention on.

Weights are random (speed only). Times are medians of interleaved repeats after warm-up; torch.compile's
compile time is reported apart. `--dry-run` runs every row on the CPU with a tiny model and 2 steps
(gloo instead of NCCL, compile skipped) to check the script without a GPU; its numbers mean nothing.

    python bench/gpu_smoke.py [--dry-run] [--image 64] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GPU_MODEL = {"channels": [64, 128, 256, 256], "attention_levels": [False, False, True, True], "num_res_blocks": 2,
             "num_head_channels": 32, "norm_num_groups": 32}
CPU_MODEL = {"channels": [8, 16], "attention_levels": [False, True], "num_res_blocks": 1, "num_head_channels": 8,
             "norm_num_groups": 4}
SAMPLERS = (("ddpm", 1000, "epsilon"), ("ddim", 50, "epsilon"), ("ddim", 25, "epsilon"), ("dpm++", 20, "epsilon"),
            ("dpm++", 10, "epsilon"), ("rflow", 30, "rflow"), ("rflow", 10, "rflow"))
NUM_CLASSES = 20


def _recipe(args, objective: str):
    from medlt.recipe.load import recipe_from_dict

    return recipe_from_dict({
        "name": "gpu-smoke", "seed": 0,
        "data": {"format": "manifest", "root": str(REPO), "image_size": [args.image, args.image]},
        "model": CPU_MODEL if args.dry_run else GPU_MODEL,
        "diffusion": {"objective": objective},
        "sampling": {"sampler": "rflow" if objective == "rflow" else "ddim"},
    }, base_dir=REPO)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _set_flash(model, on: bool) -> int:
    n = 0
    for m in model.modules():
        if hasattr(m, "use_flash_attention") and not getattr(m, "save_attn", False):
            m.use_flash_attention = on
            n += 1
    return n


def _median_time(fn, device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def train_rows(args, device) -> list[tuple[str, str, str]]:
    from medlt.data.labels import LabelSpace
    from medlt.diffusion.label_samplers import LabelBank
    from medlt.diffusion.objective import total_loss, training_terms
    from medlt.diffusion.schedule import build_scheduler
    from medlt.diffusion.unet import build_model

    recipe = _recipe(args, "epsilon")
    ls = LabelSpace(tuple(f"c{i}" for i in range(NUM_CLASSES)), multi_label=False)
    bank = LabelBank([2 ** (NUM_CLASSES - i) for i in range(NUM_CLASSES)], multi_label=False)
    sched = build_scheduler(recipe.diffusion)
    x0 = torch.rand(args.batch, 1, args.image, args.image, device=device) * 2 - 1
    y = torch.randint(0, NUM_CLASSES, (args.batch,), device=device)
    rows = []

    def measure(name, *, bf16, flash, channels_last=False, compile_=False, ddp=False):
        torch.manual_seed(0)
        model = build_model(recipe.model, ls).to(device)
        n_attn = _set_flash(model, flash)
        x = x0.to(memory_format=torch.channels_last) if channels_last else x0
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        net = model
        note = f"{n_attn} attention blocks"
        if ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        compile_s = None
        if compile_:
            net = torch.compile(net)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            st = training_terms(net, sched, [], x, y, bank=bank, label_drop_prob=0.1,
                                generator=torch.Generator().manual_seed(0), autocast=bf16)
            loss = total_loss(st)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if compile_:
            t0 = time.perf_counter()
            step()
            _sync(device)
            compile_s = time.perf_counter() - t0
            note += f", first step (compile) {compile_s:.1f} s"
        m = _median_time(step, device, args.warmup, args.repeats)
        rows.append(("train step", name, f"{m * 1e3:.1f} ms", f"{args.batch / m:.1f} img/s", note))
        print(f"[gpu-smoke] train {name}: {m * 1e3:.1f} ms", file=sys.stderr, flush=True)

    measure("fp32", bf16=False, flash=False)
    measure("bf16", bf16=True, flash=False)
    measure("bf16 + flash attention", bf16=True, flash=True)
    measure("bf16 + flash + channels_last", bf16=True, flash=True, channels_last=True)
    if args.dry_run:
        rows.append(("train step", "bf16 + flash + torch.compile", "skipped (dry run)", "", ""))
    else:
        measure("bf16 + flash + torch.compile", bf16=True, flash=True, compile_=True)
    backend = "gloo" if device.type == "cpu" else "nccl"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    torch.distributed.init_process_group(backend, rank=0, world_size=1)
    try:
        measure(f"bf16 + flash, DDP x1 ({backend})", bf16=True, flash=True, ddp=True)
    finally:
        torch.distributed.destroy_process_group()
    return rows


def sampler_rows(args, device) -> list[tuple]:
    from medlt.data.labels import LabelSpace
    from medlt.diffusion.sampling import sample_loop
    from medlt.diffusion.schedule import build_scheduler
    from medlt.diffusion.unet import build_model

    ls = LabelSpace(tuple(f"c{i}" for i in range(NUM_CLASSES)), multi_label=False)
    models, scheds = {}, {}
    for objective in ("epsilon", "rflow"):
        recipe = _recipe(args, objective)
        torch.manual_seed(0)
        models[objective] = build_model(recipe.model, ls).to(device).eval()
        _set_flash(models[objective], True)
        scheds[objective] = build_scheduler(recipe.diffusion)
    b = args.sample_batch
    labels = torch.arange(b) % NUM_CLASSES
    rows = []
    for sampler, steps, objective in SAMPLERS:
        steps = 2 if args.dry_run else steps
        gens = [torch.Generator().manual_seed(i) for i in range(b)]

        def run(steps=steps, sampler=sampler, objective=objective, gens=gens):
            sample_loop(models[objective], scheds[objective], labels, gens, (1, args.image, args.image),
                        guidance_scale=1.0, num_inference_steps=steps, sampler=sampler,
                        autocast=device.type == "cuda")

        m = _median_time(run, device, 1 if not args.dry_run else 0, 1)
        rows.append(("synth", f"{sampler}-{steps}", f"{m:.2f} s", f"{b / m:.1f} img/s",
                     f"batch {b}, guided, {'bf16' if device.type == 'cuda' else 'fp32'}, flash"))
        print(f"[gpu-smoke] synth {sampler}-{steps}: {b / m:.1f} img/s", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny model, 2 steps: checks the script only")
    ap.add_argument("--image", type=int, default=None, help="image side (64; dry run 16)")
    ap.add_argument("--batch", type=int, default=None, help="train batch (64; dry run 4)")
    ap.add_argument("--sample-batch", type=int, default=None, help="synth batch (256; dry run 4)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    if args.dry_run:
        device = torch.device("cpu")
        args.image, args.batch, args.sample_batch = args.image or 16, args.batch or 4, args.sample_batch or 4
        args.warmup, args.repeats = 1, 1
        gpu = "none (dry run on CPU: numbers mean nothing)"
    else:
        if not torch.cuda.is_available():
            print("error: bench/gpu_smoke: no CUDA device (torch.cuda.is_available() is False); run it on a GPU "
                  "machine, or pass --dry-run to check the script on the CPU", file=sys.stderr)
            return 2
        device = torch.device("cuda", 0)
        torch.cuda.set_device(device)
        args.image, args.batch, args.sample_batch = args.image or 64, args.batch or 64, args.sample_batch or 256
        gpu = torch.cuda.get_device_name(device)
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    t0 = time.perf_counter()
    rows = train_rows(args, device) + sampler_rows(args, device)
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"medlt GPU smoke: {gpu}; torch {torch.__version__}; UNet "
                    f"{(CPU_MODEL if args.dry_run else GPU_MODEL)['channels']}, {args.image}x{args.image}, "
                    f"{NUM_CLASSES} classes, train batch {args.batch}; total {time.perf_counter() - t0:.0f} s")
    for c in ("what", "setting", "time", "throughput", "note"):
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    Console(width=160).print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
