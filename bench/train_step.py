"""Training-step throughput of each long-tail regularizer vs the plain ε-MSE step, and guided vs
unguided sampling steps, measured side by side in one run (repeats interleaved; each ratio is the median
over rounds of that round's time over the same round's baseline).

    python bench/train_step.py [--recipe recipes/phantom/nih_cxr_lt.yaml] [--batch 16] [--repeats 15]

Each of cbdm, overlap and ccua adds one extra pass (balanced label, negative label or
unconditional) that goes through the network in the SAME batched forward, so its step costs about 2x
the plain step: the floor is 2.0x, the target <= 2.05x. coral (a projection head and a B x B
contrastive loss on the main pass's bottleneck) and t2h (a B x B posterior in Gram form and one draw)
add no pass: target <= 1.10x. On CUDA, bf16 autocast vs fp32 is measured too. The last two lines give
the worst ratio of each group. `--smoke` runs a tiny model once (checks the script, measures nothing).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medlt.data.labels import LabelSpace  # noqa: E402
from medlt.diffusion.label_samplers import LabelBank  # noqa: E402
from medlt.diffusion.objective import total_loss, training_terms  # noqa: E402
from medlt.diffusion.regularizers import build_regularizers, model_heads  # noqa: E402
from medlt.diffusion.sampling import guided_eps  # noqa: E402
from medlt.diffusion.schedule import build_scheduler  # noqa: E402
from medlt.diffusion.unet import build_model  # noqa: E402
from medlt.recipe import load_recipe  # noqa: E402
from medlt.recipe.diffusion import RegularizerConfig  # noqa: E402

VARIANTS = {"plain": [], "cbdm": ["cbdm"], "overlap": ["overlap"], "ccua": ["ccua"],
            "cbdm+overlap+ccua": ["cbdm", "overlap", "ccua"], "coral": ["coral"], "t2h": ["t2h"],
            "cbdm+coral": ["cbdm", "coral"]}
EXTRA_PASS = ("cbdm", "overlap", "ccua")     # one extra pass each: floor 2.00x, target <= 2.05x
NO_PASS = ("coral", "t2h")                   # no extra pass: target <= 1.10x
SMOKE = ["data.image_size=[16,16]", "model.channels=[8,16]", "model.attention_levels=[false,true]",
         "model.num_head_channels=8", "model.norm_num_groups=4", "model.num_res_blocks=1"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="recipes/phantom/nih_cxr_lt.yaml")
    ap.add_argument("--batch", type=int, default=None, help="default: recipe training.per_rank_batch_size")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--set", action="append", default=[], help="recipe override key=value")
    ap.add_argument("--smoke", action="store_true", help="tiny model, batch 4, one round (checks the script)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.set, args.batch, args.repeats, args.warmup = [*SMOKE, *args.set], 4, 1, 0

    recipe = load_recipe(args.recipe, args.set)
    device = torch.device(args.device)
    k = 20
    ls = LabelSpace(tuple(f"c{i}" for i in range(k)), multi_label=False)
    batch = args.batch or recipe.training.per_rank_batch_size
    shape = (batch, recipe.model.in_channels, *recipe.data.image_size)
    regs = {n: build_regularizers([RegularizerConfig(name=r) for r in rs]) for n, rs in VARIANTS.items()}
    # one model for every variant: it carries CORAL's head (a C_mid x 128 linear layer; idle elsewhere)
    heads = model_heads([r for rs in regs.values() for r in rs], recipe.model.channels[-1])
    model = build_model(recipe.model, ls, heads=heads).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sched = build_scheduler(recipe.diffusion)
    bank = LabelBank([2 ** (k - i) for i in range(k)], multi_label=False)
    x0 = torch.rand(shape, device=device) * 2 - 1
    y = torch.randint(0, k, (batch,), device=device)
    precisions = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]

    def train_step(name, bf16):
        g = torch.Generator().manual_seed(0)
        st = training_terms(model, sched, regs[name], x0, y, bank=bank, label_drop_prob=0.1,
                            generator=g, autocast=bf16)
        loss = total_loss(st)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def sample_step(w, bf16):
        t = torch.full((batch,), 500, device=device, dtype=torch.long)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            guided_eps(model, x0, t, y, w)

    jobs = {}
    for p in precisions:
        bf16 = p == "bf16"
        for n in VARIANTS:
            jobs[(p, "train", n)] = (lambda n=n, bf16=bf16: train_step(n, bf16))
        jobs[(p, "sample", "unguided")] = (lambda bf16=bf16: sample_step(0.0, bf16))
        jobs[(p, "sample", "guided")] = (lambda bf16=bf16: sample_step(1.6, bf16))
    times = {key: [] for key in jobs}
    for r in range(args.warmup + args.repeats):
        # interleaved: every variant in every round, in a fresh seeded order per round, so that no variant
        # always follows the heaviest one (a step right after a large one runs slower on a CPU)
        order = list(jobs)
        random.Random(r).shuffle(order)
        for key in order:
            fn = jobs[key]
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if r >= args.warmup:
                times[key].append(time.perf_counter() - t0)

    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"device={device} batch={batch} image={tuple(shape[1:])} channels={recipe.model.channels} "
          f"repeats={args.repeats} (interleaved; ratio = median over rounds of the round's time / that "
          f"round's baseline time, with the rounds' quartiles)")
    print(f"{'precision':9} {'kind':7} {'variant':18} {'ms/step':>9} {'images/s':>9} {'ratio':>7} "
          f"{'quartiles':>13}")
    worst, worst_no_pass = (0.0, ""), (0.0, "")
    for p in precisions:
        for kind, base in (("train", "plain"), ("sample", "unguided")):
            for (pp, kk, n), m in med.items():
                if pp != p or kk != kind:
                    continue
                # paired within each round: a slow spell of a noisy machine hits both times alike
                per_round = sorted(a / b for a, b in zip(times[(pp, kk, n)], times[(p, kind, base)], strict=True))
                ratio = statistics.median(per_round)
                q = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else [ratio, ratio, ratio]
                print(f"{p:9} {kind:7} {n:18} {m * 1e3:9.1f} {batch / m:9.1f} {ratio:6.2f}x "
                      f"[{q[0]:.2f}, {q[2]:.2f}]")
                if kind == "train" and n in EXTRA_PASS:
                    worst = max(worst, (ratio, f"{p} {n}"))
                if kind == "train" and n in NO_PASS:
                    worst_no_pass = max(worst_no_pass, (ratio, f"{p} {n}"))
        if p == "bf16":
            r = med[("fp32", "train", "plain")] / med[("bf16", "train", "plain")]
            print(f"bf16 speed-up over fp32 (plain train step): {r:.2f}x")
    print(f"worst regularizer ratio vs plain step: {worst[0]:.2f}x ({worst[1]}; floor 2.00x, target <= 2.05x)")
    print(f"worst no-extra-pass method (coral, t2h) ratio vs plain step: {worst_no_pass[0]:.2f}x "
          f"({worst_no_pass[1]}; target <= 1.10x)")


if __name__ == "__main__":
    main()
