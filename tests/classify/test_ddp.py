"""`torchrun --nproc_per_node 2 -m medlt classify` on CPU (gloo): DDP training, rank 0 writes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import fakedata  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # two processes on two shared cores, ~30 s
def test_torchrun_two_ranks_crt(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not installed next to this python")
    (tmp_path / "real").mkdir()
    recipe = fakedata.make_real(tmp_path / "real")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [str(torchrun if torchrun.exists() else "torchrun"), "--standalone", "--nproc_per_node", "2", "-m",
           "medlt", "classify", str(recipe), "--out", str(tmp_path / "run"), "--set", "classifier.epochs=2",
           "--set", "classifier.method=crt", "--set", "classifier.crt_epochs=1"]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("best val balanced_accuracy") == 1  # only rank 0 reports
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["stage"] for h in hist] == ["main", "main", "crt"]
    from medlt.classify import load_classifier

    clf = load_classifier(tmp_path / "run")
    assert clf.predict_proba(torch.zeros(2, 1, 32, 32)).shape == (2, 3)
