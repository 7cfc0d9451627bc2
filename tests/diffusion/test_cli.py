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


def _fail(argv, capsys) -> tuple[int, list[str]]:
    from medlt.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("override, expected", [
    ("training.max_steps=-5", "recipe key 'training.max_steps': must be >= 1 (got -5)"),
    ("training.log_every_steps=0", "recipe key 'training.log_every_steps': must be >= 1 (got 0)"),
    ("training.per_rank_batch_size=0", "recipe key 'training.per_rank_batch_size': must be >= 1 (got 0)"),
    ("data.image_size=[9, 9]", "recipe key 'data.image_size': every size must be divisible by 2"),
])
def test_train_cli_out_of_range_recipe_is_one_line_before_the_run_folder(toy_run, capsys, override, expected):
    tmp, recipe = toy_run
    out = tmp / f"never-{abs(hash(override))}"
    code, err = _fail(["train", str(recipe), "--out", str(out), "--set", override], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("override, expected", [
    ("regularizers=[{name: coral, options: {kapa: 1}}]",
     "recipe key 'regularizers[0].options.kapa' is unknown for 'coral'; did you mean 'kappa'?"),
    ("regularizers=[{name: coral, options: {temperature: 0}}]",
     "recipe key 'regularizers[0].options.temperature': must be a number > 0.0"),
    ("regularizers=[{name: cbdm}, {name: t2h, weight: 0.5}]",
     "recipe key 'regularizers[1].weight': 't2h' replaces the training target and adds no term"),
    ("regularizers=[{name: t2h, options: {gate: head}}]", "recipe key 'regularizers[0].options.gate' is unknown"),
    ("regularizers=[{name: corral}]", "did you mean 'coral'"),
])
def test_train_cli_bad_coral_and_t2h_entries_are_one_line(toy_run, capsys, override, expected):
    tmp, recipe = toy_run
    out = tmp / f"never-{abs(hash(override))}"
    code, err = _fail(["train", str(recipe), "--out", str(out), "--set", override], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not out.exists()


def _copy_run(tmp, name):
    import shutil

    dst = tmp / name
    shutil.copytree(tmp / "run", dst)
    return dst


def test_resume_with_a_changed_learning_rate_is_refused_listing_the_key(toy_run, capsys):
    tmp, recipe = toy_run
    run = _copy_run(tmp, "resume-lr")
    before = (run / "recipe.resolved.yaml").read_bytes()
    code, err = _fail(["train", str(recipe), "--out", str(run), "--resume", "--set", "training.lr=1e6",
                       "--set", "training.max_steps=4"], capsys)
    assert code == 2 and len(err) == 1, err
    assert "differ from the checkpoint" in err[0] and "training.lr (0.001 -> 1000000.0);" in err[0]
    assert "training.max_steps (" not in err[0]  # a cadence key: allowed
    assert (run / "recipe.resolved.yaml").read_bytes() == before
    assert not (run / "resume_history.yaml").exists()


def test_resume_with_cadence_changes_records_what_ran(toy_run):
    from medlt.recipe.load import recipe_from_dict
    from medlt.utils.checkpoint import load_checkpoint

    tmp, recipe_path = toy_run
    run = _copy_run(tmp, "resume-ok")
    data = yaml.safe_load(recipe_path.read_text())
    recipe = recipe_from_dict(data, base_dir=tmp, overrides=["training.max_steps=4", "training.log_every_steps=2"])
    train(recipe, run, resume=True, data=toy_data())
    resolved = yaml.safe_load((run / "recipe.resolved.yaml").read_text())
    assert resolved["training"]["max_steps"] == 4 and resolved["training"]["log_every_steps"] == 2
    history = yaml.safe_load((run / "resume_history.yaml").read_text())
    assert len(history) == 1 and history[0]["resumed_at"] == {"step": 2}
    assert history[0]["changed"] == {"training.log_every_steps": {"old": 1, "new": 2},
                                     "training.max_steps": {"old": 2, "new": 4}}
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 4 and state["recipe"]["training"]["max_steps"] == 4


def test_resume_below_the_checkpoint_step_is_refused(toy_run, capsys):
    tmp, recipe = toy_run
    run = _copy_run(tmp, "resume-short")
    code, err = _fail(["train", str(recipe), "--out", str(run), "--resume", "--set", "training.max_steps=1"], capsys)
    assert code == 2 and len(err) == 1 and "already at step 2" in err[0]


def test_sample_with_other_classes_than_the_checkpoint_is_refused(toy_run, capsys):
    tmp, recipe = toy_run
    out = tmp / "wrong-classes"
    code, err = _fail(["sample", str(recipe), "--checkpoint", str(tmp / "run"), "--class", "beta", "--num", "1",
                       "--out", str(out), "--set", "data.classes=[alpha, beta, delta]"], capsys)
    assert code != 0 and len(err) == 1, err
    assert "trained on classes ['alpha', 'beta', 'gamma']" in err[0] and "['alpha', 'beta', 'delta']" in err[0]
    assert not out.exists()


def test_sample_seed_defaults_to_the_recipe_seed(toy_run):
    from medlt.utils.seeding import derive_seed

    tmp, recipe = toy_run
    runs = {}
    for name, extra in {"default": [], "explicit": ["--seed", "3"], "zero": ["--seed", "0"]}.items():
        out = tmp / f"seed-{name}"
        r = CliRunner().invoke(app, ["sample", str(recipe), "--checkpoint", str(tmp / "run"), "--class", "beta",
                                     "--num", "1", "--out", str(out), "--steps", "2", *extra])
        assert r.exit_code == 0, r.output
        runs[name] = out / "synthetic_beta_0000.png"
    assert Image.open(runs["default"]).text["medlt:seed"] == str(derive_seed(3, "beta", 0))  # toy recipe seed 3
    assert runs["default"].read_bytes() == runs["explicit"].read_bytes()
    assert runs["default"].read_bytes() != runs["zero"].read_bytes()


def test_output_under_a_regular_file_is_one_line(toy_run, capsys):
    tmp, recipe = toy_run
    blocker = tmp / "a_regular_file"
    blocker.write_text("x")
    code, err = _fail(["sample", str(recipe), "--checkpoint", str(tmp / "run"), "--class", "beta", "--num", "1",
                       "--out", str(blocker / "sub"), "--steps", "1"], capsys)
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and str(blocker) in err[0], err
    assert "Traceback" not in err[0]


def test_full_disk_is_one_line_naming_the_file(toy_run, capsys, monkeypatch):
    import errno
    import os

    from medlt.utils import atomic

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    tmp, recipe = toy_run
    monkeypatch.setattr(atomic.os, "replace", full)
    out = tmp / "full"
    code, err = _fail(["sample", str(recipe), "--checkpoint", str(tmp / "run"), "--class", "beta", "--num", "1",
                       "--out", str(out), "--steps", "1"], capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0] == f"error: cannot write {out / 'synthetic_beta_0000.png'}: No space left on device"
    assert not list(out.glob("*.png")) and not list(out.glob(".*"))


def test_train_prints_plain_progress_lines_when_not_a_terminal(tmp_path, capsys, monkeypatch):
    from medlt.utils import progress

    monkeypatch.setattr(progress, "_last_line", [0.0])
    monkeypatch.setenv("MEDLT_PROGRESS_INTERVAL_S", "0")
    monkeypatch.delenv("MEDLT_PROGRESS", raising=False)
    train(toy_recipe(tmp_path, ["training.max_steps=2"]), tmp_path / "run", data=toy_data())
    err = capsys.readouterr().err
    assert "train: 1/2 step (50%), " in err and " step/s, " in err and "ETA " in err and "loss=" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("train: 2/2 step (100%), ") and ", done, loss=" in last


@pytest.mark.parametrize("flag, value, expected", [("--steps", "0", "--steps must be between 1 and"),
                                                   ("--steps", "101", "num_train_timesteps=100 (got 101)"),
                                                   ("--guidance", "-1", "--guidance must be >= 0 (got -1.0)")])
def test_sample_out_of_range_options_are_one_line(toy_run, capsys, flag, value, expected):
    tmp, recipe = toy_run
    out = tmp / f"bad-{flag}-{value}"
    code, err = _fail(["sample", str(recipe), "--checkpoint", str(tmp / "run"), "--class", "beta", "--num", "1",
                       "--out", str(out), flag, value], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err  # a command-line error: exit 2
    assert not out.exists()


@pytest.mark.parametrize("scales, expected", [
    ("0,-1", "--scales must be numbers >= 0, got 0, -1"),
    ("0,nan", "--scales must be numbers >= 0"),
    ("0,x", "'x' is not valid (comma-separated numbers expected)"),
    ("0,,1", "an empty item"),
    ("0,1,", "an empty item"),
    ("", "empty; give comma-separated numbers"),
    ("1,1.0", "'1.0' is given twice"),
])
def test_tune_guidance_bad_scales_exit_2_before_any_file_is_read(tmp_path, capsys, scales, expected):
    code, err = _fail(["tune-guidance", tmp_path / "no-recipe.yaml", "--checkpoint", tmp_path / "run",
                       "--reference-classifier", tmp_path / "clf", "--out", tmp_path / "g", "--scales", scales],
                      capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --scales") and expected in err[0], err
    assert not (tmp_path / "g").exists()


def test_tune_guidance_steps_above_the_models_timesteps_exit_2(toy_run, capsys):
    tmp, recipe = toy_run
    out = tmp / "tune-steps"
    code, err = _fail(["tune-guidance", recipe, "--checkpoint", tmp / "run", "--reference-classifier",
                       tmp / "no-clf", "--out", out, "--steps", "101", "--device", "cpu"], capsys)
    assert code == 2 and len(err) == 1 and "--steps must be between 1 and" in err[0], err
    assert "num_train_timesteps=100 (got 101)" in err[0] and not out.exists()
