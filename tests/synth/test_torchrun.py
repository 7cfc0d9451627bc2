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
