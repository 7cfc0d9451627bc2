"""evaluate-autoencoder numbers against the formulas; latent synth writes CT NIfTI at the recipe's
grid and spacing (nibabel affine) and 2D PNGs."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from medlt.autoencoder.evaluate import evaluate_autoencoder, reconstruction_metrics
from medlt.autoencoder.load import load_autoencoder
from medlt.autoencoder.train import train_autoencoder
from medlt.data.labels import LabelSpace
from medlt.diffusion.sample import load_generator
from medlt.diffusion.train import train
from medlt.metrics.diversity import ms_ssim_settings
from medlt.synth.generate import run_synth
from tests.autoencoder.tiny import AE, tiny_recipe
from tests.diffusion.toy import NAMES, ToyDataset
from tests.synth.fakes import TINY_MODEL, make_recipe, make_table


class _Labelled(ToyDataset):
    label_space = LabelSpace(NAMES, False)


def test_evaluate_writes_per_class_metrics(ae2d, tmp_path):
    recipe = tiny_recipe(tmp_path, extra={"data": {"group_thresholds": [6, 10]}})
    ds = _Labelled()
    rep = evaluate_autoencoder(recipe, ae2d, tmp_path / "ev", dataset=ds, train_counts=[12, 8, 4])
    saved = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert saved["per_class"] == rep["per_class"] and saved["split"]["n_images"] == 24
    assert rep["groups"] == {"alpha": "head", "beta": "medium", "gamma": "tail"}
    ae = load_autoencoder(ae2d)
    x = torch.stack([ds[i]["image"] for i in range(12)])  # class alpha: items 0..11
    recon = ae.model.reconstruct(x).clamp(-1, 1)
    mse = (recon - x).pow(2).flatten(1).mean(1)
    psnr = (10 * torch.log10(4.0 / mse)).mean().item()
    assert rep["per_class"]["psnr_db"]["alpha"] == pytest.approx(psnr, rel=1e-4)
    assert rep["per_group"]["psnr_db"]["head"] == rep["per_class"]["psnr_db"]["alpha"]
    for k in ("ssim", "ms_ssim"):
        assert all(-1 <= v <= 1 for v in rep["per_class"][k].values())
    assert rep["ms_ssim_settings"] == ms_ssim_settings([8, 8])
    worst = rep["worst"]["gamma"]
    assert len(worst) == 2 and worst[0]["psnr_db"] <= worst[1]["psnr_db"]
    assert all((tmp_path / "ev" / w["file"]).is_file() for w in worst)
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "| gamma | tail | 4 |" in md


def test_ssim_of_identical_images_is_one():
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    m = reconstruction_metrics(x, x.clone(), ms_ssim_settings([16, 16]))
    assert torch.allclose(m["ssim"], torch.ones(2), atol=1e-5)
    assert torch.allclose(m["ms_ssim"], torch.ones(2), atol=1e-5)
    assert torch.isinf(m["psnr_db"]).all() or (m["psnr_db"] > 100).all()


def test_latent_synth_writes_ct_nifti_at_the_recipe_spacing(tmp_path):
    ls = LabelSpace(("Atelectasis", "Emphysema"), True)
    base = make_recipe(tmp_path / "data", "ct-rate")
    table = make_table(tmp_path / "data", ls, np.array([[1, 0]] * 3 + [[0, 1]]), fmt="ct-rate")
    ae_cfg = {**AE, "training": {**AE["training"], "max_steps": 2, "per_rank_batch_size": 2}}
    d = base.model_dump(mode="json")
    recipe = tiny_recipe(tmp_path, depth=4, multi_label=True, extra={"autoencoder": ae_cfg})
    d["autoencoder"] = recipe.autoencoder.model_dump(mode="json")
    from medlt.recipe.load import recipe_from_dict

    ae_recipe = recipe_from_dict(d, base_dir=tmp_path)
    train_autoencoder(ae_recipe, tmp_path / "ae", dataset=ToyDataset(depth=4, multi_label=True))
    d["model"] = {**TINY_MODEL, "spatial_dims": 3, "in_channels": 2, "latent": {"autoencoder": str(tmp_path / "ae")}}
    d["diffusion"] = {"num_train_timesteps": 50, "clip_sample": False}
    d["training"] = {"max_steps": 1, "per_rank_batch_size": 2, "sample_grid_every_steps": 0, "device": "cpu",
                     "warmup_steps": 0}
    d["synth"] = {"batch_size": 4}
    recipe = recipe_from_dict(d, base_dir=tmp_path)
    ckpt = train(recipe, tmp_path / "ldm", data=_two_class(ls))
    gen = load_generator(ckpt)
    res = run_synth(recipe, tmp_path / "syn", generator=gen, table=table, steps=2, show_progress=False)
    man = pd.read_csv(tmp_path / "syn" / "manifest.csv")
    assert len(man) == res.written > 0
    img = nib.load(tmp_path / "syn" / man["image"].iloc[0])
    assert img.shape == (8, 8, 4)
    assert np.allclose(np.abs(np.diag(img.affine)[:3]), [2.0, 2.0, 3.0])
    assert np.allclose(img.header.get_zooms(), (2.0, 2.0, 3.0))


def _two_class(label_space):
    """The toy 3D multi-label set reduced to two classes (every item positive for at least one)."""
    from medlt.diffusion.data import from_dataset

    ds = ToyDataset(depth=4, multi_label=True)
    for it in ds.items:
        it["label"] = it["label"][:2]
        if it["label"].sum() == 0:
            it["label"][0] = 1.0
    return from_dataset(ds, label_space)
