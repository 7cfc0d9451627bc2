"""Latent diffusion at sampling time (issue 18 items 2 and 3): per-sample guidance scales
(`medlt synth --guidance-from`) reach the latent sampler, and the run-time decoding settings
(autoencoder.decode, decode_tile, decode_overlap) come from the current recipe, are applied and are
recorded. Randomly initialised UNets (perturbed so that guidance changes the result) on the tiny
trained autoencoders of conftest.py: real sampling and decoding code, no diffusion training."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from medlt.autoencoder.decode import decode
from medlt.autoencoder.generator import LatentGenerator
from medlt.autoencoder.load import load_autoencoder
from medlt.cli import app
from medlt.data.labels import LabelSpace
from medlt.diffusion.sample import Generator, load_generator, recipe_for_generator
from medlt.diffusion.unet import build_model
from medlt.errors import DataError, MedltError, RecipeError
from medlt.recipe import recipe_to_dict
from medlt.recipe.load import recipe_from_dict
from medlt.synth.generate import run_synth
from medlt.utils.checkpoint import save_checkpoint
from tests.autoencoder.tiny import AE, tiny_recipe
from tests.diffusion.toy import NAMES
from tests.synth.fakes import TINY_MODEL, make_recipe, make_table

REPO = Path(__file__).resolve().parents[2]

SLIDING = ["autoencoder.decode=sliding-window", "autoencoder.decode_tile=[2,2,1]", "autoencoder.decode_overlap=0.25"]


def _perturbed_model(recipe, label_space):
    model = build_model(recipe.model, label_space)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # MONAI zero-initialises the output layer: make ε depend on x and the label
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def _latent_generator(recipe, ae_run, label_space):
    base = Generator(_perturbed_model(recipe, label_space), recipe, label_space, [4] * label_space.num_classes,
                     "ab" * 32, torch.device("cpu"))
    return LatentGenerator(base, load_autoencoder(ae_run))


def test_per_sample_guidance_scales_in_latent_space(ae2d, tmp_path):
    ls = LabelSpace(NAMES, False)
    gen = _latent_generator(tiny_recipe(tmp_path, autoencoder=ae2d), ae2d, ls)
    y, seeds, scales = torch.tensor([0, 1, 2]), [3, 4, 5], [0.0, 2.0, 0.7]
    kw = {"num_inference_steps": 3, "sampler": "ddim"}
    z = gen.generate_latents(y, seeds, guidance_scale=scales, batch_size=2, **kw)
    for i in range(3):  # each image as if sampled alone with its own scale
        alone = gen.generate_latents(y[i:i + 1], [seeds[i]], guidance_scale=scales[i], **kw)
        assert torch.allclose(z[i], alone[0], atol=1e-5), i
    unguided = gen.generate_latents(y[1:2], [seeds[1]], guidance_scale=0.0, **kw)
    assert not torch.allclose(z[1], unguided[0], atol=1e-3)  # the scale acted
    x = gen.generate(y, seeds, guidance_scale=scales, batch_size=2, **kw)
    assert x.shape == (3, 1, 8, 8) and torch.allclose(x, gen.autoencoder.decode_scaled(z), atol=1e-5)
    with pytest.raises(DataError, match="3 seeds but 2 guidance scales"):
        gen.generate_latents(y, seeds, guidance_scale=[1.0, 2.0], **kw)


def test_decode_settings_come_from_the_current_recipe(ae3d, tmp_path):
    ls = LabelSpace(NAMES, True)
    trained_with = tiny_recipe(tmp_path, depth=4, multi_label=True, autoencoder=ae3d)
    gen = _latent_generator(trained_with, ae3d, ls)
    assert gen.decode_settings == {"decode": "plain", "decode_tile": None, "decode_overlap": 0.5}
    z = torch.randn(2, 2, 4, 4, 2, generator=torch.Generator().manual_seed(1))
    plain = gen.autoencoder.decode_scaled(z)
    now = tiny_recipe(tmp_path, depth=4, multi_label=True, autoencoder=ae3d, overrides=SLIDING)
    recipe_for_generator(now, gen, "ckpt.pt")
    assert gen.decode_settings == {"decode": "sliding-window", "decode_tile": [2, 2, 1], "decode_overlap": 0.25}
    ae = gen.autoencoder
    tiled = ae.decode_scaled(z)
    expect = decode(ae.model, z / ae.scale_factor, mode="sliding-window", tile=[2, 2, 1], overlap=0.25).clamp(-1, 1)
    assert torch.allclose(tiled, expect, atol=1e-6) and not torch.allclose(tiled, plain, atol=1e-3)
    # the generated images use it too
    x = gen.generate(torch.eye(3)[:1], [7], guidance_scale=0.5, num_inference_steps=2)
    zz = gen.generate_latents(torch.eye(3)[:1], [7], guidance_scale=0.5, num_inference_steps=2)
    want = decode(ae.model, zz / ae.scale_factor, mode="sliding-window", tile=[2, 2, 1], overlap=0.25)
    assert torch.allclose(x, want.clamp(-1, 1), atol=1e-5)
    # back to plain with a recipe that says so; a tile with the wrong number of sizes: one line, before sampling
    recipe_for_generator(trained_with, gen, "ckpt.pt")
    assert gen.decode_settings["decode"] == "plain"
    bad = tiny_recipe(tmp_path, depth=4, multi_label=True, autoencoder=ae3d,
                      overrides=["autoencoder.decode=sliding-window", "autoencoder.decode_tile=[2,2]"])
    with pytest.raises(RecipeError, match=r"autoencoder\.decode_tile.*2 sizes.*3D latents") as e:
        recipe_for_generator(bad, gen, "ckpt.pt")
    assert "\n" not in str(e.value)


def _ct_latent_checkpoint(tmp_path, ae3d):
    """A latent CT checkpoint on disk (random perturbed UNet + the tiny 3D autoencoder), its recipe
    YAML and a real CT-RATE-layout table."""
    ls = LabelSpace(("Atelectasis", "Emphysema"), True)
    d = make_recipe(tmp_path / "data", "ct-rate").model_dump(mode="json")
    d["autoencoder"] = {k: v for k, v in AE.items() if k not in ("training", "evaluate")}
    d["model"] = {**TINY_MODEL, "spatial_dims": 3, "in_channels": 2, "latent": {"autoencoder": str(ae3d)}}
    d["diffusion"] = {"num_train_timesteps": 50, "clip_sample": False}
    d["synth"] = {"batch_size": 4}
    recipe = recipe_from_dict(d, base_dir=tmp_path)
    # train: 3 Atelectasis, 1 Emphysema (thresholds [3, 6]: medium... tail); no real patient data
    table = make_table(tmp_path / "data", ls, np.array([[1, 0]] * 3 + [[0, 1]]), fmt="ct-rate")
    model = _perturbed_model(recipe, ls)
    sd = model.state_dict()
    ckpt = save_checkpoint(tmp_path / "ldm" / "checkpoints" / "last.pt", {
        "model": sd, "ema": sd, "step": 0, "recipe": recipe_to_dict(recipe), "label_space": ls.to_dict(),
        "train_class_counts": [3, 1], **load_autoencoder(ae3d).checkpoint_entry()})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_to_dict(recipe)))
    return recipe, table, ckpt, path


def test_latent_synth_with_guidance_from_and_sliding_window_decode(ae3d, tmp_path):
    recipe, table, ckpt, _ = _ct_latent_checkpoint(tmp_path, ae3d)
    g = tmp_path / "guidance.json"
    g.write_text(json.dumps({"scales": {"head": 0.5, "medium": 1.0, "tail": 2.0}}))
    run = recipe_from_dict({**recipe_to_dict(recipe)}, base_dir=tmp_path, overrides=SLIDING)
    res = run_synth(run, tmp_path / "syn", checkpoint=ckpt, table=table, steps=2, guidance_from=g,
                    show_progress=False)
    man = pd.read_csv(tmp_path / "syn" / "manifest.csv")
    assert len(man) == res.written > 0 and set(man["guidance_scale"]) <= {0.5, 1.0, 2.0}
    plan = json.loads((tmp_path / "syn" / "plan.json").read_text())
    assert plan["settings"]["decode"] == {"decode": "sliding-window", "decode_tile": [2, 2, 1], "decode_overlap": 0.25}
    # the volumes are the sliding-window decode of the sampled latents
    gen = load_generator(ckpt)
    recipe_for_generator(run, gen, ckpt)
    import nibabel as nib

    row = man.iloc[0]
    y = torch.tensor([[float(row["Atelectasis"]), float(row["Emphysema"])]])
    x = gen.generate(y, [int(row["seed"])], guidance_scale=float(row["guidance_scale"]), num_inference_steps=2)
    hu = np.asarray(nib.load(tmp_path / "syn" / row["image"]).dataobj)
    assert hu.shape == (8, 8, 4) and np.abs(hu - x[0, 0].numpy() * run.data.ct.hu_scale).max() <= 1.0
    # resuming the folder with another decoding is refused (it changes the pixels)
    with pytest.raises(MedltError, match="decode"):
        run_synth(recipe, tmp_path / "syn", checkpoint=ckpt, table=table, steps=2, guidance_from=g,
                  show_progress=False)


def _phantom_ct_checkpoint(tmp_path, ae3d):
    """A CT-RATE-layout phantom (16 x 16 x 12 voxels, read at 8 x 8 x 4) and a latent checkpoint for it on disk (random
    perturbed UNet + the tiny 3D autoencoder), with the recipe file it was made from."""
    from medlt.data.sources import label_space_for
    from medlt.data.table import load_table

    ph = tmp_path / "ph"
    r = CliRunner().invoke(app, ["phantom", "--layout", "ct-rate", "--out", str(ph), "-n", "12", "-s", "16"])
    assert r.exit_code == 0, r.output
    d = yaml.safe_load((REPO / "recipes" / "phantom" / "ct_rate_latent.yaml").read_text())
    d["data"].update({"root": str(ph), "labels": str(ph), "image_size": [8, 8, 4]})
    d["data"]["ct"]["crop_size"] = [8, 8, 4]
    d["autoencoder"] = {k: v for k, v in AE.items() if k not in ("training", "evaluate")}
    d["model"] = {**TINY_MODEL, "spatial_dims": 3, "in_channels": 2, "latent": {"autoencoder": str(ae3d)}}
    d["diffusion"] = {"num_train_timesteps": 50, "clip_sample": False}
    d["synth"] = {"batch_size": 4}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(d))
    recipe = recipe_from_dict(d, base_dir=tmp_path)
    ls = label_space_for(recipe.data)
    counts = load_table(recipe).class_counts(recipe.data.splits.train)
    sd = _perturbed_model(recipe, ls).state_dict()
    ckpt = save_checkpoint(tmp_path / "ldm" / "checkpoints" / "last.pt", {
        "model": sd, "ema": sd, "step": 0, "recipe": recipe_to_dict(recipe), "label_space": ls.to_dict(),
        "train_class_counts": [int(c) for c in counts], **load_autoencoder(ae3d).checkpoint_entry()})
    return ckpt, path


def test_cli_latent_ct_phantom_synth_guidance_from_sliding_window_then_validate(ae3d, tmp_path):
    """The issue's "done when": a latent CT phantom synth with --guidance-from and
    --set autoencoder.decode=sliding-window writes volumes that `medlt data validate` accepts."""
    ckpt, path = _phantom_ct_checkpoint(tmp_path, ae3d)
    g = tmp_path / "guidance.json"
    g.write_text(json.dumps({"scales": {"head": 0.5, "medium": 1.0, "tail": 2.0}}))
    sets = [x for kv in SLIDING for x in ("--set", kv)]
    out = tmp_path / "syn"
    r = CliRunner().invoke(app, ["synth", str(path), "--checkpoint", str(ckpt), "--out", str(out), "--steps", "2",
                                 "--quota", "to_count:2", "--guidance-from", str(g), *sets])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "plan.json").read_text())["settings"]["decode"] == {
        "decode": "sliding-window", "decode_tile": [2, 2, 1], "decode_overlap": 0.25}
    man = pd.read_csv(out / "manifest.csv")
    assert len(man) > 0 and set(man["source"]) == {"synthetic"} and set(man["guidance_scale"]) <= {0.5, 1.0, 2.0}
    r = CliRunner().invoke(app, ["data", "validate", str(out / "merged.recipe.yaml")])
    assert r.exit_code == 0 and r.output.startswith("ok"), r.output
