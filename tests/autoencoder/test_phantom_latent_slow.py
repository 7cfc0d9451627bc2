"""Slow, end to end through the CLI on the phantoms with shortened budgets: phantom ->
train-autoencoder -> evaluate-autoencoder -> train (model.latent) -> synth -> data validate of
synth's merged.recipe.yaml; CT volumes at the recipe's grid and spacing (nibabel). The class
fidelity numbers at the recipes' full budgets come from scripts/latent_phantom.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
CASES = {
    "ct-rate": ("ct_rate_latent.yaml", ["-n", "12"], (32, 32, 16), (12.0, 12.0, 20.0)),
    "nih-cxr-lt": ("nih_cxr_lt_latent.yaml", ["-n", "120", "-s", "128"], (128, 128), None),
}
SHORT = ["autoencoder.training.max_steps=8", "autoencoder.training.checkpoint_every_steps=8",
         "autoencoder.training.scale_factor_images=16", "training.max_steps=4", "training.per_rank_batch_size=4",
         "training.sample_grid_every_steps=4", "sampling.num_inference_steps=2", "synth.batch_size=16"]


def _medlt(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MEDLT_PROGRESS": "off"}
    r = subprocess.run([sys.executable, "-m", "medlt", *map(str, args)], capture_output=True, text=True, env=env,
                       cwd=str(REPO), timeout=900)
    assert r.returncode == 0, f"medlt {args[0]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(CASES))
def test_latent_pipeline_on_the_phantom(layout, tmp_path):
    name, ph_args, shape, spacing = CASES[layout]
    recipe = REPO / "recipes" / "phantom" / name
    ph = tmp_path / "ph"
    _medlt("phantom", "--layout", layout, "--out", ph, *ph_args)
    sets = [f"data.root={ph}", f"data.labels={ph}", f"model.latent.autoencoder={tmp_path / 'ae'}", *SHORT]
    s = [x for kv in sets for x in ("--set", kv)]
    _medlt("train-autoencoder", recipe, "--out", tmp_path / "ae", *s)
    _medlt("evaluate-autoencoder", recipe, "--autoencoder", tmp_path / "ae", "--out", tmp_path / "ae-eval", *s)
    rep = json.loads((tmp_path / "ae-eval" / "report.json").read_text())
    assert set(rep["per_class"]["psnr_db"]) and rep["overall"]["psnr_db"] > 0
    _medlt("train", recipe, "--out", tmp_path / "ldm", *s)
    _medlt("synth", recipe, "--checkpoint", tmp_path / "ldm", "--out", tmp_path / "syn", "--steps", "2",
           "--quota", "to_count:6", *s)
    man = pd.read_csv(tmp_path / "syn" / "manifest.csv")
    assert len(man) > 0 and set(man["source"]) == {"synthetic"}
    r = _medlt("data", "validate", tmp_path / "syn" / "merged.recipe.yaml")
    assert r.stdout.startswith("ok")
    first = tmp_path / "syn" / man["image"].iloc[0]
    if spacing is not None:
        img = nib.load(first)
        assert img.shape == shape
        assert np.allclose(img.header.get_zooms(), spacing)
        assert np.allclose(np.abs(np.diag(img.affine)[:3]), spacing)
    else:
        from PIL import Image

        assert Image.open(first).size == shape
