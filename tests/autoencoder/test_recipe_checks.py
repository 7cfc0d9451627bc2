"""`medlt train-autoencoder` refuses, in one line and before writing anything, a recipe without an
`autoencoder:` section (it would train the 100,000-step defaults) and an autoencoder.in_channels
other than the images'."""

from pathlib import Path

import pytest

from medlt.autoencoder.train import check_autoencoder_shapes, train_autoencoder
from medlt.errors import RecipeError
from medlt.recipe import load_recipe
from medlt.recipe.autoencoder import require_autoencoder_section
from tests.cli_run import run_cli

ROOT = Path(__file__).resolve().parents[2]
PIXEL = ROOT / "recipes" / "phantom" / "nih_cxr_lt.yaml"  # no autoencoder: section
LATENT = ROOT / "recipes" / "phantom" / "nih_cxr_lt_latent.yaml"


def test_section_required():
    r = load_recipe(PIXEL)
    assert r.autoencoder.training.max_steps == 100_000  # the defaults it would have trained
    with pytest.raises(RecipeError, match=r"^p.yaml: recipe key 'autoencoder': missing"):
        require_autoencoder_section(r, "p.yaml")
    require_autoencoder_section(load_recipe(LATENT))
    require_autoencoder_section(load_recipe(PIXEL, ["autoencoder.training.max_steps=10"]))  # given with --set


def test_library_refuses_too(tmp_path):
    with pytest.raises(RecipeError, match="recipe key 'autoencoder': missing"):
        train_autoencoder(load_recipe(PIXEL), tmp_path / "ae")
    assert not (tmp_path / "ae").exists()


def test_cli_without_section_writes_nothing(tmp_path, capsys):
    out = tmp_path / "ae"
    code, _, err = run_cli(["train-autoencoder", PIXEL, "--out", out], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {PIXEL}: recipe key 'autoencoder': missing") and "max_steps" in lines[0]
    assert not out.exists()


def test_in_channels_must_be_the_images(tmp_path, capsys):
    with pytest.raises(RecipeError, match=r"recipe key 'autoencoder.in_channels': is 3 but the images have 1"):
        check_autoencoder_shapes(load_recipe(LATENT, ["autoencoder.in_channels=3"]))
    out = tmp_path / "ae"
    code, _, err = run_cli(["train-autoencoder", LATENT, "--out", out, "--set", "autoencoder.in_channels=3",
                            "--set", "autoencoder.training.device=cpu"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "autoencoder.in_channels" in err, err
    assert not out.exists()
