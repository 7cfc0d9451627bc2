"""Peak memory of the streamed generation metrics (class-matched FID + KID per class/group/overall
with bootstrap FID intervals, per-class FID at a fixed n, and the distance-ratio memorization
nearest-neighbour search) at 1k, 20k and 40k synthetic feature vectors, side by side, with the ratios.

Features are generated chunk by chunk (never all held), fed to `ClassFeatureStats` (per-class
running mean/covariance, fixed-size real reservoirs and fixed-n synthetic samples) and
`MemorizationAccumulator` (chunked NN search against a fixed real set, per-class counts, a fixed
ratio histogram and the top-k pairs). Peak memory is the process's peak RSS above the level right before each
measurement (Linux: VmHWM is reset through /proc/self/clear_refs), so torch allocations count too
(tracemalloc would miss them); the exact bytes held by the accumulators ("state") are printed too,
since RSS moves by several MiB with allocator caching. For scale, the size of holding all N vectors and of one N×N float32
distance matrix is printed alongside.

    OMP_NUM_THREADS=1 python bench/evaluate.py [--sizes 1000 20000] [--dim 256] [--real 2000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> int:
    """Reset the peak-RSS counter; return the current RSS in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def state_bytes(stats, memo) -> int:
    """Exact bytes of every tensor/array the accumulators hold after streaming (deterministic,
    unlike RSS, which moves with allocator caching)."""
    return stats.state_nbytes() + memo.state_nbytes()


def run(n_syn: int, real, real_y, dim: int, chunk: int, names, groups, boot: int = 10) -> dict:
    import torch

    from medlt.metrics.feature_stats import ClassFeatureStats
    from medlt.metrics.memorization import MemorizationAccumulator

    gc.collect()
    base = reset_peak()
    t0 = time.perf_counter()
    stats = ClassFeatureStats(names, groups, extractor_name="bench-random", reservoir_capacity=1000,
                              fid_samples_per_class=500)
    for i in range(0, real.shape[0], chunk):
        stats.update("real", real[i:i + chunk], real_y[i:i + chunk])
    memo = MemorizationAccumulator(real, [f"r{i}" for i in range(real.shape[0])], names, groups, chunk=chunk)
    g = torch.Generator().manual_seed(n_syn)
    for start in range(0, n_syn, chunk):
        b = min(chunk, n_syn - start)
        f = torch.randn(b, dim, generator=g) * 1.1 + 0.1
        y = torch.randint(0, len(names), (b,), generator=g)
        stats.update("synthetic", f, y)
        memo.update(f, y, [f"s{start + j}" for j in range(b)])
    state = state_bytes(stats, memo)
    out = stats.compute(kid_subset_size=100, kid_num_subsets=20, bootstrap_replicates=boot)
    mem = memo.compute()
    secs = time.perf_counter() - t0
    peak = _status_kib("VmHWM") - base
    return {"n": n_syn, "peak_mib": peak / 1024, "state_mib": state / 2**20, "seconds": secs, "fid_overall": out["scopes"]["overall"]["fid"],
            "near_copies": mem["overall"]["n_flagged"]}


def child(n: int, args) -> None:
    import json

    import torch

    torch.set_num_threads(1)
    names = [f"class{i}" for i in range(10)]
    groups = ["head"] * 3 + ["medium"] * 4 + ["tail"] * 3
    g = torch.Generator().manual_seed(0)
    real = torch.randn(args.real, args.dim, generator=g)
    real_y = torch.randint(0, len(names), (args.real,), generator=g)
    run(200, real, real_y, args.dim, args.chunk, names, groups, args.bootstrap)  # warm-up: imports, pools
    print(json.dumps(run(n, real, real_y, args.dim, args.chunk, names, groups, args.bootstrap)))


def main() -> None:
    import json
    import subprocess

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000, 40000])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--real", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--bootstrap", type=int, default=10, help="FID bootstrap replicates per class and scope")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args.child, args)
    rows = []
    for n in args.sizes:  # each size in a fresh process, so one run's freed memory can't hide the next's
        cmd = [sys.executable, __file__, "--child", str(n), "--dim", str(args.dim), "--real", str(args.real),
               "--chunk", str(args.chunk), "--bootstrap", str(args.bootstrap)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"streamed class-matched FID/KID (10 classes + 3 groups + overall, {args.bootstrap} bootstrap replicates) "
          f"+ distance-ratio memorization; D={args.dim}, {args.real} real vectors, chunk {args.chunk}; one fresh "
          f"process per size")
    print(f"{'N synthetic':>12} {'state MiB':>10} {'peak RSS MiB':>13} {'seconds':>8} {'all N vectors MiB':>18} "
          f"{'N×N float32 MiB':>16} {'FID':>8} {'flagged':>11}")
    for r in rows:
        print(f"{r['n']:>12} {r['state_mib']:>10.2f} {r['peak_mib']:>13.1f} {r['seconds']:>8.2f} "
              f"{r['n'] * args.dim * 4 / 2**20:>18.1f} {r['n'] ** 2 * 4 / 2**20:>16.1f} {r['fid_overall']:>8.3f} "
              f"{r['near_copies']:>11}")
    for a, b in zip(rows, rows[1:], strict=False):
        print(f"{b['n']}/{a['n']} vectors (input x{b['n'] / a['n']:.0f}): state x{b['state_mib'] / a['state_mib']:.2f}, "
              f"peak RSS x{b['peak_mib'] / max(a['peak_mib'], 1e-9):.2f}")
    print("state = exact bytes held by the accumulators (per-class running moments, <= 1000 real and <= 500 "
          "synthetic stored vectors per class, the fixed real set); it grows only while the stored samples fill, "
          "then stays flat. Peak RSS above "
          "the pre-run level also counts transient chunk buffers and allocator caching (+-10 MiB noise).")


if __name__ == "__main__":
    main()
