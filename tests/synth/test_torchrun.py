"""`torchrun --nproc_per_node 2 -m medlt synth` on CPU (gloo) writes the same bytes as one process."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medlt.data.labels import LabelSpace
from tests.synth.fakes import write_manifest_dataset, write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.png")}


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(tmp_path):
    from medlt.recipe import load_recipe

    names, counts = ("a", "b", "c"), [7, 2, 1]
    recipe = write_manifest_dataset(tmp_path / "real", names, counts)
    ckpt = write_tiny_checkpoint(tmp_path / "ck.pt", load_recipe(recipe), LabelSpace(names, False), counts)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    torchrun = Path(sys.executable).with_name("torchrun")
    args = ["-m", "medlt", "synth", str(recipe), "--checkpoint", str(ckpt), "--steps", "3", "--batch-size", "3",
            "--device", "cpu"]
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], check=True, env=env, timeout=300)
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", *args, "--out", str(tmp_path / "two")],
                       env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = _hashes(tmp_path / "one"), _hashes(tmp_path / "two")
    assert len(one) == 5 + 6 and one == two
    m1 = pd.read_csv(tmp_path / "one/manifest.csv")
    m2 = pd.read_csv(tmp_path / "two/manifest.csv")
    pd.testing.assert_frame_equal(m1, m2)


@pytest.mark.slow
def test_torchrun_with_dropped_near_copies_equals_one_process(tmp_path):
    """--drop-near-copies under 2 ranks: the same images dropped, the same re-draws, the same bytes."""
    import numpy as np
    import torch

    from medlt.classify.data import synthetic_recipe
    from medlt.data.loaders import build_dataset
    from medlt.recipe import load_recipe
    from medlt.synth.near_copies import load_near_copy_filter
    from tests.synth.test_near_copies import _extractor

    names, counts = ("a", "b", "c"), [7, 2, 1]
    recipe = write_manifest_dataset(tmp_path / "real", names, counts)
    rec = load_recipe(recipe)
    ckpt = write_tiny_checkpoint(tmp_path / "ck.pt", rec, LabelSpace(names, False), counts)
    ext = _extractor(tmp_path / "pool.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    args = ["-m", "medlt", "synth", str(recipe), "--checkpoint", str(ckpt), "--steps", "3", "--batch-size", "3",
            "--device", "cpu"]
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "plain")], check=True, env=env, timeout=300)
    # a threshold that flags about a third of this model's images
    ds = build_dataset(synthetic_recipe(rec, tmp_path / "plain"), "train")
    x = torch.stack([torch.as_tensor(ds[i]["image"]) for i in range(len(ds))]).float().numpy()
    ratios = [c["ratio"] for c in load_near_copy_filter(rec, ext).check(x)]
    threshold = float(np.quantile(ratios, 0.35))
    args += ["--drop-near-copies", str(ext), "--set", f"evaluate.memorization_ratio_threshold={threshold}"]
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], check=True, env=env, timeout=300)
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", *args, "--out", str(tmp_path / "two")],
                       env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = _hashes(tmp_path / "one"), _hashes(tmp_path / "two")
    assert len(one) == 5 + 6 and one == two
    for f in ("manifest.csv", "dropped.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "one" / f), pd.read_csv(tmp_path / "two" / f))
    dropped = pd.read_csv(tmp_path / "one/dropped.csv")
    assert len(dropped) >= 1 and set(dropped["reason"]) == {"near-copy"}
