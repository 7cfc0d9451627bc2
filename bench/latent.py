"""Latent vs pixel diffusion at the same output resolution, side by side in one run: training-step
time, sampling time (latent: including the decode to pixels) and peak memory.

Both rows use the same class-conditional MONAI UNet widths; the pixel row diffuses
(1, *size) images, the latent row the (latent_channels, *size / f) latents of a MONAI AutoencoderKL
with downsampling f = 2^(len(ae_channels) - 1) (latents are cached in training, so the latent train
step excludes the encoder; sampling includes one decoder pass per batch). Each repeat measures pixel
then latent (interleaved, so drifting machine load hits both); the medians over repeats are printed
with the latent/pixel ratios. Peak memory: CUDA max_memory_allocated per measurement; on CPU the
peak RSS above the level before it (Linux /proc/self/clear_refs), and every (row, phase) then runs in
its own fresh process: inside one process the allocator reuses pages an earlier measurement made
resident, so a later measurement's RSS would not grow (a latent row measured after the pixel row
read ~0 MiB).

    python bench/latent.py --size 512 512 --batch 8 --repeats 5           # quiet machine, one GPU
    python bench/latent.py --size 256 256 128 --ae-channels 64 128 256 --batch 1
    python bench/latent.py --smoke                                        # tiny CPU check (tests)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Peak:
    """Peak memory (MiB) of the block: CUDA allocator peak, or CPU peak RSS above the start."""

    def __init__(self, device):
        self.device = device
        self.mib = 0.0

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
            self._start = _rss_kib("VmRSS")
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mib = torch.cuda.max_memory_allocated() / 2**20
        else:
            self.mib = max(0, _rss_kib("VmHWM") - self._start) / 1024
        return False


def build(args, device, mode: str):
    """(unet, scheduler, shape of what the UNet diffuses, decoder or None)."""
    import torch

    from medlt.autoencoder.model import build_autoencoder
    from medlt.data.labels import LabelSpace
    from medlt.diffusion.schedule import build_scheduler
    from medlt.diffusion.unet import build_model
    from medlt.recipe.autoencoder import AutoencoderConfig
    from medlt.recipe.diffusion import DiffusionConfig, ModelConfig

    d = len(args.size)
    ls = LabelSpace(tuple(f"c{i}" for i in range(args.classes)), False)
    f = 2 ** (len(args.ae_channels) - 1)
    latent = mode == "latent"
    shape = (args.latent_channels, *[s // f for s in args.size]) if latent else (1, *args.size)
    cfg = ModelConfig(spatial_dims=d, in_channels=shape[0], channels=args.unet_channels,
                      attention_levels=[False] * (len(args.unet_channels) - 1) + [True],
                      num_res_blocks=args.res_blocks, num_head_channels=args.head_channels,
                      norm_num_groups=args.groups)
    torch.manual_seed(0)
    unet = build_model(cfg, ls).to(device)
    sched = build_scheduler(DiffusionConfig(num_train_timesteps=1000, clip_sample=not latent), d)
    dec = None
    if latent:
        ae_cfg = AutoencoderConfig(channels=args.ae_channels, attention_levels=[False] * len(args.ae_channels),
                                   num_res_blocks=args.res_blocks, latent_channels=args.latent_channels,
                                   norm_num_groups=args.groups, encoder_attention=False, decoder_attention=False)
        dec = build_autoencoder(ae_cfg, d).to(device).eval()
    return unet, sched, shape, dec


def measure(args, device, mode: str, phases=("train", "sample")) -> dict:
    import torch

    from medlt.diffusion.label_samplers import LabelBank
    from medlt.diffusion.objective import total_loss, training_terms

    unet, sched, shape, dec = build(args, device, mode)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    bank = LabelBank([10] * args.classes, False, None)
    bf16 = device.type == "cuda"
    x0 = torch.randn(args.batch, *shape, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    g = torch.Generator().manual_seed(0)

    def step():
        st = training_terms(unet, sched, [], x0, y, bank=bank, label_drop_prob=0.1, generator=g, autocast=bf16)
        loss = total_loss(st)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out = {"diffused_shape": list(shape)}
    if "train" in phases:
        out |= _measure_train(args, device, step)
    if "sample" in phases:
        out |= _measure_sample(args, device, unet, sched, shape, dec, bf16)
    return out


def _measure_train(args, device, step) -> dict:
    import torch

    step()  # warm-up (allocations, cuDNN autotuning)
    with Peak(device) as pk_train:
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_s = (time.perf_counter() - t0) / args.train_steps
    return {"train_step_s": train_s, "train_peak_mib": pk_train.mib}


def _measure_sample(args, device, unet, sched, shape, dec, bf16) -> dict:
    import torch

    from medlt.diffusion.sampling import sample_loop

    unet.eval()
    gens = [torch.Generator().manual_seed(i) for i in range(args.sample_batch)]
    labels = torch.arange(args.sample_batch) % args.classes
    with Peak(device) as pk_sample, torch.no_grad():
        t0 = time.perf_counter()
        z = sample_loop(unet, sched, labels, gens, shape, guidance_scale=1.0, num_inference_steps=args.sample_steps,
                        clip_sample=dec is None, autocast=bf16, clamp_output=dec is None)
        if dec is not None:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                z = dec.decode(z)
        if device.type == "cuda":
            torch.cuda.synchronize()
        sample_s = time.perf_counter() - t0
    return {"sample_s": sample_s, "sample_peak_mib": pk_sample.mib, "output_shape": list(z.shape[1:])}


def measure_in_child(argv: list[str], mode: str) -> dict:
    """CPU: each phase of one row in a fresh process (see the module docstring); start-up not timed."""
    out = {}
    for phase in ("train", "sample"):
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv, "--one", f"{mode}:{phase}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"bench/latent.py {mode}:{phase} failed:\n{r.stderr[-3000:]}")
        out |= json.loads(r.stdout.strip().splitlines()[-1])
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs="+", default=[512, 512], help="output H W [D]")
    ap.add_argument("--ae-channels", type=int, nargs="+", default=[64, 128, 256, 256])
    ap.add_argument("--latent-channels", type=int, default=4)
    ap.add_argument("--unet-channels", type=int, nargs="+", default=[128, 256, 256, 512])
    ap.add_argument("--res-blocks", type=int, default=2)
    ap.add_argument("--head-channels", type=int, default=64)
    ap.add_argument("--groups", type=int, default=32)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8, help="training batch")
    ap.add_argument("--sample-batch", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--sample-steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (a check that it runs)")
    ap.add_argument("--json", type=Path, help="also write the medians as JSON here")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: MODE:PHASE in this process, JSON on stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    if args.smoke:
        args.size = [32, 32] if len(args.size) == 2 else [16, 16, 8]
        args.ae_channels, args.unet_channels, args.latent_channels = [8, 8], [8, 8], 2
        args.res_blocks, args.head_channels, args.groups = 1, 8, 4
        args.classes, args.batch, args.sample_batch = 3, 2, 2
        args.train_steps, args.sample_steps, args.repeats = 1, 2, 1
    import torch

    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if args.device == "auto" else args.device))
    if args.one:
        mode, phase = args.one.split(":")
        print(json.dumps(measure(args, device, mode, (phase,))))
        return {}
    runs = {"pixel": [], "latent": []}
    for _ in range(args.repeats):
        for mode in ("pixel", "latent"):  # interleaved
            runs[mode].append(measure(args, device, mode) if device.type == "cuda" else measure_in_child(argv, mode))
    keys = ("train_step_s", "sample_s", "train_peak_mib", "sample_peak_mib")
    med = {m: {k: statistics.median(r[k] for r in rs) for k in keys} | {
        "diffused_shape": rs[0]["diffused_shape"], "output_shape": rs[0]["output_shape"]} for m, rs in runs.items()}
    print(f"device {device}, output {args.size}, batch {args.batch} (sampling {args.sample_batch} x "
          f"{args.sample_steps} steps), medians of {args.repeats} interleaved repeat(s)")
    print(f"{'':18}{'pixel':>14}{'latent':>14}{'latent/pixel':>14}")
    for k in keys:
        p, q = med["pixel"][k], med["latent"][k]
        print(f"{k:18}{p:14.4g}{q:14.4g}{(q / p if p else float('nan')):14.3f}")
    print(f"{'diffused shape':18}{str(med['pixel']['diffused_shape']):>14}{str(med['latent']['diffused_shape']):>14}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "medians": med}, indent=2,
                                        default=str))
    return med


if __name__ == "__main__":
    main()
