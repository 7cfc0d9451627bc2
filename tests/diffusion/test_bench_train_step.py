"""bench/train_step.py --smoke: the script runs on a tiny model and prints a row per variant,
coral, t2h and cbdm+coral included, and both worst-ratio lines (no timing is checked)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_train_step_smoke_has_coral_and_t2h_rows():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "bench/train_step.py", "--smoke", "--device", "cpu"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {line.split()[2] for line in r.stdout.splitlines() if line.startswith("fp32 ") and " train " in line}
    assert {"plain", "cbdm", "coral", "t2h", "cbdm+coral"} <= rows
    assert "worst no-extra-pass method (coral, t2h) ratio vs plain step" in r.stdout
    assert "target <= 1.10x" in r.stdout
