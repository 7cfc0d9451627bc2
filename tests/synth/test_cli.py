"""`medlt synth` through the CLI with a real (randomly initialised) diffusion checkpoint."""

import json

import pandas as pd
from typer.testing import CliRunner

from medlt.cli import app
from medlt.data.labels import LabelSpace
from tests.synth.fakes import write_manifest_dataset, write_tiny_checkpoint

NAMES = ("common", "rare", "rarest")
COUNTS = [6, 2, 1]


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_dry_run_synth_then_data_validate_and_stats(tmp_path):
    from medlt.recipe import load_recipe

    recipe = write_manifest_dataset(tmp_path / "real", NAMES, COUNTS)
    ckpt = write_tiny_checkpoint(tmp_path / "run/checkpoints/last.pt", load_recipe(recipe),
                                 LabelSpace(NAMES, False), COUNTS)
    out = tmp_path / "syn"
    r = _invoke("synth", recipe, "--out", out, "--dry-run")
    assert r.exit_code == 0, r.output
    for word in ("common", "rarest", "to generate", "tail", "head"):
        assert word in r.output
    assert json.loads((out / "plan.json").read_text())["num_images"] == 0 + 4 + 5
    assert not (out / "manifest.csv").exists()

    r = _invoke("synth", recipe, "--checkpoint", ckpt, "--out", out, "--steps", "2", "--sampler", "ddim")
    assert r.exit_code == 0, r.output
    man = pd.read_csv(out / "manifest.csv", dtype=str)
    assert len(man) == 9 and set(man["steps"]) == {"2"} and set(man["guidance_scale"]) == {"1.0"}
    # the merged recipe passes DATA's validation and its stats show balanced training counts
    r = _invoke("data", "validate", out / "merged.recipe.yaml")
    assert r.exit_code == 0, r.output
    r = _invoke("data", "stats", out / "merged.recipe.yaml")
    assert r.exit_code == 0, r.output
    from medlt.data.table import load_table

    assert load_table(load_recipe(out / "merged.recipe.yaml")).class_counts("train") == [6, 6, 6]
    # resume: nothing left to do
    r = _invoke("synth", recipe, "--checkpoint", ckpt, "--out", out, "--steps", "2")
    assert r.exit_code == 0 and "0 file(s) written" in r.output


def test_cli_errors_are_one_line(tmp_path, capsys):
    import pytest

    from medlt.cli import main

    recipe = write_manifest_dataset(tmp_path / "real", NAMES, COUNTS)
    base = ["synth", str(recipe), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as e:
        main(base + ["--quota", "to_count:x", "--dry-run"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "to_count:N" in err and "Traceback" not in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(base)
    err = capsys.readouterr().err
    assert e.value.code != 0 and "--checkpoint" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(base + ["--checkpoint", str(tmp_path / "missing.pt")])
    err = capsys.readouterr().err
    assert e.value.code != 0 and "missing.pt" in err and "Traceback" not in err
