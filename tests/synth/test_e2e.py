"""End to end, as a new user would: phantom -> medlt train (a few steps) -> synth --dry-run -> synth
(killed half-way and resumed) -> data validate / data stats on the merged recipe: balanced counts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.channels=[8,8]", "model.attention_levels=[false,false]", "model.num_res_blocks=1",
        "model.norm_num_groups=4", "model.num_head_channels=8", "training.max_steps=2",
        "training.per_rank_batch_size=2", "training.warmup_steps=1", "training.checkpoint_every_steps=2",
        "training.sample_grid_every_steps=1000"]
CASES = {
    "nih-cxr-lt": (["-n", "120", "-s", "32"], []),
    "mimic-cxr-lt": (["-n", "100", "-s", "32"], []),
    "ct-rate": (["-n", "10", "-s", "16"], ["model.spatial_dims=3", "data.image_size=[16,16,8]",
                                           "data.ct.crop_size=[16,16,8]"]),
}


def _medlt(*args, check=True, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "medlt", *map(str, args)], capture_output=True, text=True,
                       env=env, cwd=str(REPO), timeout=900, **kw)
    if check:
        assert r.returncode == 0, f"medlt {args[0]} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _sets(pairs):
    return [a for p in pairs for a in ("--set", p)]


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(CASES))
def test_phantom_train_synth_validate(tmp_path, layout):
    ph_args, extra = CASES[layout]
    recipe = REPO / "recipes" / "phantom" / f"{layout.replace('-', '_')}.yaml"
    ph = tmp_path / "ph"
    _medlt("phantom", "--layout", layout, "--out", ph, *ph_args)
    data = [f"data.root={ph}", f"data.labels={ph}", *extra]
    _medlt("train", recipe, "--out", tmp_path / "run", *_sets(data + TINY))

    out = tmp_path / "syn"
    r = _medlt("synth", recipe, "--out", out, "--dry-run", *_sets(data))
    assert "to generate" in r.stdout and "total images" in r.stdout
    plan = json.loads((out / "plan.json").read_text())
    n = plan["num_images"]
    assert n > 0 and not (out / "manifest.csv").exists()

    # the recipe file sets model.channels etc.: the checkpoint's differ, so they are given again (a
    # checkpoint defines its model; a recipe that says otherwise is refused, see test_model_keys)
    cmd = ["synth", recipe, "--checkpoint", tmp_path / "run", "--out", out, "--steps", "2", "--batch-size", "4",
           *_sets(data + TINY)]
    if layout == "nih-cxr-lt":  # kill half-way, then resume
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        p = subprocess.Popen([sys.executable, "-m", "medlt", *map(str, cmd)], env=env, cwd=str(REPO),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and len(list(out.rglob("*.png"))) < n // 3 and p.poll() is None:
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        assert len(list(out.rglob("*.png"))) < n and not (out / "manifest.csv").exists()
    r = _medlt(*cmd)
    man = pd.read_csv(out / "manifest.csv", dtype=str)
    assert len(man) == n and set(man["source"]) == {"synthetic"}
    assert all((out / p).is_file() for p in man["image"])

    r = _medlt("data", "validate", out / "merged.recipe.yaml")
    assert r.stdout.startswith("ok")
    r = _medlt("data", "stats", out / "merged.recipe.yaml")
    assert "imbalance ratio 1.0" in r.stdout

    from medlt.data.table import load_table
    from medlt.recipe import load_recipe

    merged = load_table(load_recipe(out / "merged.recipe.yaml"))
    counts = merged.class_counts("train")
    assert len(set(counts)) == 1, counts  # to_head: every class at the head count
    assert set(merged.frame.loc[merged.frame["source"] == "synthetic", "split"]) == {"train"}
    if layout == "mimic-cxr-lt":
        import pydicom

        for p in man["image"][:5]:
            ds = pydicom.dcmread(out / p)
            assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and "SYNTHETIC" in ds.SeriesDescription
