"""bench/sampler_fidelity.py: --help; bad option values exit 2 naming the option; --smoke end to end
(phantom, generator, oracle, samplers x steps x clip modes, table with intervals) and a re-run that
reuses every stage; the clip modes really change the judged images."""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "sampler_fidelity.py"


def _script():
    spec = importlib.util.spec_from_file_location("sampler_fidelity", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_help_and_bad_values():
    r = _run("--help")
    assert r.returncode == 0 and "--train-steps" in r.stdout and "--smoke" in r.stdout
    r = _run("--out", "/tmp/never-written", "--modes", "legacy,clamp")
    assert r.returncode == 2 and "--modes: 'clamp'" in r.stderr
    r = _run("--out", "/tmp/never-written", "--steps", "10,0")
    assert r.returncode == 2 and "--steps" in r.stderr
    assert not Path("/tmp/never-written").exists()


def test_mode_overrides():
    mod = _script()
    args = mod.parse_args(["--out", "x", "--rescale", "0.5", "--interval", "0.3,none"])
    assert mod.mode_sets("consistent+rescale+interval", args) == [
        "sampling.x0_clip=consistent", "sampling.dynamic_threshold_quantile=0.995", "sampling.guidance_rescale=0.5",
        "sampling.guidance_interval=[0.3, null]"]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.png")):
        h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_smoke_end_to_end_and_resume(tmp_path):
    mod = _script()
    out = mod.main(["--smoke", "--out", str(tmp_path)])
    rows = out["rows"]
    want = {("ddim", 2), ("ddim", 3), ("dpm++", 2), ("dpm++", 3)}
    assert {(r["sampler"], r["steps"]) for r in rows} == want
    assert {r["mode"] for r in rows} == {"legacy", "consistent", "dynamic", "consistent+rescale"}
    for r in rows:
        for g in ("all", "tail"):
            lo, hi = r["ci95"][g]
            assert 0 <= lo <= r["fidelity"][g] <= hi <= 1
        assert r["n_probe"] == 2 * 20 and r["sampling"]["num_inference_steps"] == r["steps"]
    rescale = next(r for r in rows if r["mode"] == "consistent+rescale")
    assert rescale["sampling"]["x0_clip"] == "consistent" and rescale["sampling"]["guidance_rescale"] == 0.7
    probes = tmp_path / "probes"
    assert _digest(probes / "t3-s0-ddim-3-legacy") != _digest(probes / "t3-s0-ddim-3-consistent")
    md = (tmp_path / "sampler_fidelity.md").read_text()
    assert "| t3-s0 | dpm++ | 3 | consistent+rescale |" in md and "by step count" in md
    assert json.loads((tmp_path / "sampler_fidelity.json").read_text())["rows"] == rows
    ckpt = tmp_path / "gen-t3-s0" / "checkpoints" / "last.pt"
    oracle = tmp_path / "oracle" / "checkpoints" / "best.pt"
    before = (ckpt.stat().st_mtime_ns, oracle.stat().st_mtime_ns)
    again = mod.main(["--smoke", "--out", str(tmp_path)])  # every stage reused
    assert (ckpt.stat().st_mtime_ns, oracle.stat().st_mtime_ns) == before
    assert again["rows"] == rows
