"""Ingest benchmark: 2D images/s and 3D volumes/s through the MONAI pipelines, first pass without a
cache vs MONAI PersistentDataset (cold: preprocess + write, warm: read back), side by side in one run.

Generates phantoms (`medlt phantom`) in a temporary folder, so it needs no data:
    python bench/ingest.py [--cxr-images 48] [--cxr-size 256] [--ct-volumes 16] [--keep DIR]
Single process, num_workers=0, OMP_NUM_THREADS as set by the caller. Runs in < 2 min on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_phantom(layout: str, out: Path, num_images: int, image_size: int) -> None:
    """The `medlt phantom` generator with one image per class in the evaluation splits (the bench
    reads the train split only; rendering is the slow part of this script)."""
    from medlt.phantom.write import write_phantom

    write_phantom(layout, out, num_images=num_images, image_size=image_size, seed=0,
                  per_class_val=1, per_class_test=1, test_fraction=0.05)


def timed_pass(ds) -> tuple[int, float]:
    t0 = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return len(ds), time.perf_counter() - t0


def bench(recipe, label: str, cache_dir: Path) -> dict:
    from medlt.data.loaders import dataset_from_frame
    from medlt.data.table import load_table

    table = load_table(recipe)
    frame = table.role("train")
    data_nocache = recipe.data.model_copy(update={"cache_dir": None, "cache_memory": False})
    data_cache = recipe.data.model_copy(update={"cache_dir": cache_dir})
    # 3d volumes even for 2d-axial recipes: the unit of preprocessing is the file
    n, t_first = timed_pass(dataset_from_frame(table, frame, data_nocache, volumes=True))
    _, t_cold = timed_pass(dataset_from_frame(table, frame, data_cache, volumes=True))
    _, t_warm = timed_pass(dataset_from_frame(table, frame, data_cache, volumes=True))
    return {"what": label, "n": n, "first": n / t_first, "cold": n / t_cold, "warm": n / t_warm}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cxr-images", type=int, default=48, help="phantom training images")
    ap.add_argument("--cxr-size", type=int, default=256, help="phantom PNG size (pipeline: 256 px)")
    ap.add_argument("--ct-volumes", type=int, default=16, help="phantom training CT volumes")
    ap.add_argument("--ct-size", type=int, default=48, help="phantom CT X/Y size (Z = 0.75 x)")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder instead of a temp dir")
    args = ap.parse_args(argv)

    import torch

    from medlt.recipe.load import load_recipe

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work_ctx = tempfile.TemporaryDirectory(prefix="medlt-bench-") if args.keep is None else None
    work = Path(work_ctx.name) if work_ctx else args.keep
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    try:
        cxr = work / "nih-cxr-lt"
        make_phantom("nih-cxr-lt", cxr, args.cxr_images, args.cxr_size)
        r = load_recipe(REPO / "recipes/phantom/nih_cxr_lt.yaml",
                        [f"data.root={cxr}", f"data.labels={cxr}", "data.image_size=[256, 256]"])
        rows.append(bench(r, f"2D CXR PNG {args.cxr_size}px -> 256px", work / "cache-cxr"))
        ct = work / "ct-rate"
        make_phantom("ct-rate", ct, args.ct_volumes, args.ct_size)
        r = load_recipe(REPO / "recipes/phantom/ct_rate.yaml", [f"data.root={ct}", f"data.labels={ct}"])
        size = "x".join(str(s) for s in r.data.image_size)
        rows.append(bench(r, f"3D CT NIfTI {args.ct_size}^2 -> {size}", work / "cache-ct"))
    finally:
        if work_ctx:
            work_ctx.cleanup()
    print(f"\ningest benchmark (train split, single process, torch threads {torch.get_num_threads()}; "
          f"items/s, higher is better)")
    head = f"{'pipeline':<34} {'items':>6} {'no cache':>10} {'cache cold':>11} {'cache warm':>11} {'warm/no-cache':>14}"
    print(head)
    print("-" * len(head))
    for x in rows:
        print(f"{x['what']:<34} {x['n']:>6} {x['first']:>10.1f} {x['cold']:>11.1f} {x['warm']:>11.1f} "
              f"{x['warm'] / x['first']:>13.1f}x")
    print(f"(no cache: plain MONAI Dataset; cache cold: first PersistentDataset pass = preprocess + "
          f"write; cache warm: a fresh PersistentDataset reading the cache. Total wall time incl. "
          f"phantom generation {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
