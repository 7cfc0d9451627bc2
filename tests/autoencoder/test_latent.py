"""Latent diffusion (model.latent): the UNet trains on cached scaled latents with every regularizer,
both conditioning modes and both objectives; samples decode to images; error paths."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medlt.autoencoder.decode import decode
from medlt.autoencoder.latents import LatentDataset, prepare_training_data
from medlt.autoencoder.load import load_autoencoder
from medlt.diffusion.metrics_log import read_metrics
from medlt.diffusion.sample import load_generator
from medlt.diffusion.train import train
from medlt.errors import RecipeError
from medlt.recipe.load import recipe_from_dict
from medlt.utils.checkpoint import load_checkpoint
from tests.autoencoder.tiny import tiny_recipe
from tests.diffusion.toy import ToyDataset, toy_data

ALL = "regularizers=[{name: cbdm}, {name: overlap}, {name: ccua}]"
REPO = Path(__file__).resolve().parents[2]


def test_cached_latents_are_scaled_means(ae2d, tmp_path):
    recipe = tiny_recipe(tmp_path, autoencoder=ae2d)
    data, latent = prepare_training_data(recipe, toy_data(), torch.device("cpu"))
    ds = data.dataset
    assert isinstance(ds, LatentDataset) and len(ds) == 24
    ae = load_autoencoder(ae2d)
    x = torch.stack([ToyDataset()[i]["image"] for i in range(24)])
    assert torch.allclose(ds.latents, ae.model.encode(x)[0] * ae.scale_factor, atol=1e-5)
    assert ds[3]["image"].shape == (2, 4, 4) and ds[3]["label"].dtype == torch.int64
    assert latent.latent_shape == (2, 4, 4)
    cache = list((ae2d / "latent_cache").glob("*.pt"))
    assert len(cache) == 1  # keyed by the autoencoder's sha256, the preprocessing and the ids
    data2, _ = prepare_training_data(recipe, toy_data(), torch.device("cpu"))
    assert torch.equal(data2.dataset.latents, ds.latents)


@pytest.mark.parametrize("objective", ["epsilon", "rflow"])
def test_trains_with_every_regularizer_and_decodes(objective, ae2d, tmp_path):
    sets = [ALL, f"diffusion.objective={objective}"] + (["sampling.sampler=rflow"] if objective == "rflow" else [])
    recipe = tiny_recipe(tmp_path, autoencoder=ae2d, overrides=sets)
    ckpt = train(recipe, tmp_path / "run", data=toy_data())
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert len(rows) == 4 and all(np.isfinite(float(r["loss"])) for r in rows)
    assert {"cbdm", "overlap"} <= set(rows[0]) and any(k.startswith("ccua") for k in rows[0])
    state = load_checkpoint(ckpt)
    assert state["latent"]["latent_channels"] == 2 and state["latent"]["scale_factor"] > 0
    assert (tmp_path / "run" / "samples" / "step_0000004.png").is_file()
    gen = load_generator(ckpt)
    assert gen.image_shape == (1, 8, 8) and gen.latent_shape == (2, 4, 4)
    x = gen.generate(torch.tensor([0, 2]), [1, 2], guidance_scale=1.0, num_inference_steps=3,
                     sampler="rflow" if objective == "rflow" else "ddim")
    assert x.shape == (2, 1, 8, 8) and x.abs().max() <= 1.0
    z = gen.generate_latents(torch.tensor([0, 2]), [1, 2], guidance_scale=1.0, num_inference_steps=3,
                             sampler="rflow" if objective == "rflow" else "ddim")
    assert torch.allclose(gen.autoencoder.decode_scaled(z), x, atol=1e-5)
    # without a sampler, the checkpoint's own (recipe sampling.sampler) is used, as for pixel models
    x_default = gen.generate(torch.tensor([0, 2]), [1, 2], guidance_scale=1.0, num_inference_steps=3)
    torch.testing.assert_close(x_default, x)


@pytest.mark.parametrize("mode", ["time-embedding", "adaptive-norm", "cross-attention"])
def test_multi_label_conditioning_modes_3d(mode, ae3d, tmp_path):
    recipe = tiny_recipe(tmp_path, depth=4, multi_label=True, autoencoder=ae3d,
                         overrides=[f"model.multi_label_conditioning={mode}", "training.max_steps=2",
                                    "regularizers=[{name: cbdm}]", "training.sample_grid_every_steps=0"])
    ckpt = train(recipe, tmp_path / "run", data=toy_data(multi_label=True, depth=4))
    gen = load_generator(ckpt)
    x = gen.generate(torch.eye(3)[:2], [4, 5], guidance_scale=0.5, num_inference_steps=2)
    assert x.shape == (2, 1, 8, 8, 4)


def test_resume_keeps_the_autoencoder(ae2d, ae3d, tmp_path):
    recipe = tiny_recipe(tmp_path, autoencoder=ae2d, overrides=["training.max_steps=2"])
    train(recipe, tmp_path / "run", data=toy_data())
    more = tiny_recipe(tmp_path, autoencoder=ae2d, overrides=["training.max_steps=3"])
    train(more, tmp_path / "run", resume=True, data=toy_data())
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 3


def test_errors_name_the_key_and_the_file(ae3d, tmp_path):
    missing = tiny_recipe(tmp_path, autoencoder=tmp_path / "no-such-run")
    with pytest.raises(RecipeError, match=r"model\.latent\.autoencoder.*no-such-run.*no autoencoder checkpoint"):
        train(missing, tmp_path / "r1", data=toy_data())
    wrong_dim = tiny_recipe(tmp_path, autoencoder=ae3d)  # 2D diffusion, 3D autoencoder
    with pytest.raises(RecipeError, match=r"model\.latent\.autoencoder.*ae.*3D.*2D"):
        train(wrong_dim, tmp_path / "r2", data=toy_data())
    channels = tiny_recipe(tmp_path, depth=4, autoencoder=ae3d, overrides=["model.in_channels=1"])
    with pytest.raises(RecipeError, match=r"model\.in_channels.*latent_channels=2"):
        train(channels, tmp_path / "r3", data=toy_data(depth=4))
    with pytest.raises(RecipeError, match="diffusion.clip_sample.*must be false"):
        tiny_recipe(tmp_path, autoencoder=ae3d, overrides=["diffusion.clip_sample=true"])
    with pytest.raises(RecipeError, match="autoencoder.chanels"):
        tiny_recipe(tmp_path, extra={"autoencoder": {"chanels": [8]}})
    with pytest.raises(RecipeError, match="autoencoder.decode_overlap"):
        tiny_recipe(tmp_path, overrides=["autoencoder.decode_overlap=1.5"])


def test_cli_error_is_one_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\ndata: {{format: manifest, root: {tmp_path}, image_size: [8, 8]}}\n"
                      f"model: {{channels: [8, 8], attention_levels: [false, false], num_head_channels: 8, "
                      f"norm_num_groups: 4, in_channels: 2, latent: {{autoencoder: {tmp_path / 'gone'}}}}}\n"
                      f"diffusion: {{clip_sample: false}}\n")
    (tmp_path / "manifest.csv").write_text("id,image,split\n")
    r = subprocess.run([sys.executable, "-m", "medlt", "train", str(recipe), "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, cwd=str(REPO))
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "model.latent.autoencoder" in lines[0] and "gone" in lines[0], r.stderr


def test_sliding_window_decode_matches_plain_decode(ae3d):
    ae = load_autoencoder(ae3d).model
    z = torch.randn(1, 2, 8, 8, 4, generator=torch.Generator().manual_seed(0))
    plain = decode(ae, z)
    whole = decode(ae, z, mode="sliding-window", tile=[8, 8, 4])
    assert torch.allclose(plain, whole, atol=1e-5)  # one tile = the whole latent
    tiled = decode(ae, z, mode="sliding-window", tile=[6, 6, 4], overlap=0.75)
    assert tiled.shape == plain.shape == (1, 1, 16, 16, 8)
    # tiles see no context beyond their border (zero padding, per-tile GroupNorm statistics): close,
    # not equal; centre voxels covered by several overlapping tiles are closest
    rel = ((tiled - plain).abs().mean() / plain.std()).item()
    assert rel < 0.25, rel
    with pytest.raises(ValueError, match="decode_tile"):
        decode(ae, z, mode="sliding-window", tile=[4, 4])


def test_recipe_without_latent_is_unchanged(tmp_path):
    r = recipe_from_dict({"name": "x", "data": {"format": "manifest", "root": str(tmp_path)}}, base_dir=tmp_path)
    assert r.model.latent is None and r.autoencoder.downsampling_factor == 4
