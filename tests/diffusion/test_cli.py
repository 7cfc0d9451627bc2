"""`medlt sample` and `medlt train` command lines (toy checkpoint; errors are one line, non-zero exit)."""

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from medlt.cli import app
from medlt.diffusion.train import train
from medlt.recipe import recipe_to_dict
from tests.diffusion.toy import toy_data, toy_recipe


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    recipe = toy_recipe(tmp, ["training.max_steps=2", "data.classes=[alpha, beta, gamma]"])
    train(recipe, tmp / "run", data=toy_data())
    path = tmp / "toy.yaml"
    path.write_text(yaml.safe_dump(recipe_to_dict(recipe)))
    return tmp, path


def test_sample_cli_writes_synthetic_pngs_and_contact_sheet(toy_run):
    tmp, recipe = toy_run
    out = tmp / "samples"
    r = CliRunner().invoke(app, ["sample", str(recipe), "--checkpoint", str(tmp / "run"), "--class", "Beta",
                                 "--num", "3", "--out", str(out), "--steps", "2", "--guidance", "1.0"])
    assert r.exit_code == 0, r.output
    pngs = sorted(out.glob("synthetic_beta_*.png"))
    assert len(pngs) == 3 and (out / "contact_sheet.png").exists()
    im = Image.open(pngs[0])
    assert im.size == (8, 8) and im.text["medlt:synthetic"] == "true" and im.text["medlt:label"] == "beta"


def test_sample_cli_unknown_class_is_a_one_line_error(toy_run, capsys):
    from medlt.cli import main

    tmp, recipe = toy_run
    with pytest.raises(SystemExit) as e:
        main(["sample", str(recipe), "--checkpoint", str(tmp / "run"), "--class", "betta", "--num", "1",
              "--out", str(tmp / "x")])
    assert e.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'beta'" in err[0]


def test_train_cli_unknown_regularizer_is_a_recipe_error(toy_run, capsys):
    from medlt.cli import main

    tmp, recipe = toy_run
    with pytest.raises(SystemExit) as e:
        main(["train", str(recipe), "--out", str(tmp / "bad"), "--set", "regularizers=[{name: cdbm}]"])
    assert e.value.code == 2
    assert "did you mean 'cbdm'" in capsys.readouterr().err
