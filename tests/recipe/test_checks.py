"""medlt.recipe.checks: model.in_channels of pixel diffusion must be the images' channel count,
refused as a recipe error by `medlt train` before anything is written."""

from pathlib import Path

import pytest

from medlt.errors import RecipeError
from medlt.recipe import load_recipe
from medlt.recipe.checks import IMAGE_CHANNELS, check_diffusion_shapes
from tests.cli_run import run_cli

ROOT = Path(__file__).resolve().parents[2]
LATENT = ROOT / "recipes" / "phantom" / "nih_cxr_lt_latent.yaml"


def test_pixel_diffusion_in_channels_must_be_the_images():
    r = load_recipe(LATENT, ["model.latent=null"])
    assert r.model.in_channels == 4 and IMAGE_CHANNELS == 1
    with pytest.raises(RecipeError, match=r"^x.yaml: recipe key 'model.in_channels': is 4 but the images have 1 "
                                          r"channel .*model.latent"):
        check_diffusion_shapes(r, "x.yaml")
    check_diffusion_shapes(load_recipe(LATENT, ["model.latent=null", "model.in_channels=1"]))
    check_diffusion_shapes(load_recipe(LATENT))  # latent: checked against the autoencoder's latents instead


def test_train_refuses_before_writing(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", LATENT, "--out", out, "--set", "model.latent=null",
                            "--set", "training.device=cpu"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    # the --set that made the model a pixel model is named, not the recipe file
    assert lines[0].startswith("error: --set model.latent=null: recipe key 'model.in_channels': is 4 but the "
                               "images have 1")
    assert not out.exists()
