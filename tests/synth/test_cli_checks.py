"""`medlt synth` failure paths a new user meets: --dry-run checks the checkpoint as the real run
does (same one-line error), a plan of no image is refused, command-line range errors exit 2, and a
guidance file tuned with other sampling settings is named on stderr."""

import json

import pytest

from medlt.data.labels import LabelSpace
from medlt.recipe import load_recipe
from tests.cli_run import run_cli
from tests.synth.fakes import write_manifest_dataset, write_tiny_checkpoint

NAMES = ("common", "rare", "rarest")
COUNTS = [6, 2, 1]
ALL_GROUPS = {"head": 1.0, "medium": 1.5, "tail": 2.0}


@pytest.fixture
def world(tmp_path):
    recipe = write_manifest_dataset(tmp_path / "real", NAMES, COUNTS)
    ckpt = write_tiny_checkpoint(tmp_path / "run/checkpoints/last.pt", load_recipe(recipe),
                                 LabelSpace(NAMES, False), COUNTS)
    return tmp_path, recipe, ckpt


def _guidance_file(path, *, sha="00" * 32, sampler="ddim", steps=2):
    path.write_text(json.dumps({"scales": ALL_GROUPS, "generator": {"checkpoint_sha256": sha},
                                "sampler": sampler, "steps": steps}))
    return path


def _bad_checkpoints(tmp_path, recipe):
    """(name, checkpoint, extra synth arguments): each fails the real run's checkpoint checks."""
    rec = load_recipe(recipe)
    other_layout = write_tiny_checkpoint(tmp_path / "other/last.pt", rec, LabelSpace(("a", "b", "c"), False), COUNTS)
    rflow = write_tiny_checkpoint(tmp_path / "rflow/last.pt",
                                  load_recipe(recipe, ["diffusion.objective=rflow", "sampling.sampler=rflow"]),
                                  LabelSpace(NAMES, False), COUNTS)
    ckpt = tmp_path / "run/checkpoints/last.pt"
    return [
        ("missing path", tmp_path / "nowhere.pt", [], "nowhere.pt"),
        ("another layout's checkpoint", other_layout, [], "trained on classes"),
        ("model-key conflict", ckpt, ["--set", "diffusion.num_train_timesteps=500"], "diffusion.num_train_timesteps"),
        ("sampler the objective refuses", rflow, ["--sampler", "ddim"], "--sampler 'ddim'"),
        ("guidance file of another checkpoint", ckpt, ["--guidance-from", _guidance_file(tmp_path / "g.json")],
         "tuned for checkpoint"),
    ]


@pytest.mark.parametrize("case", range(5))
def test_dry_run_refuses_what_the_real_run_refuses_with_the_same_line(world, capsys, case):
    tmp_path, recipe, _ = world
    for name, ckpt, extra, words in _bad_checkpoints(tmp_path, recipe)[case:case + 1]:
        errors = []
        for mode in (["--dry-run"], []):
            out = tmp_path / f"out-{len(errors)}-{name.replace(' ', '_')}"
            code, _, err = run_cli(["synth", recipe, "--checkpoint", ckpt, "--out", out, "--steps", "2", *mode,
                                    *extra], capsys)
            assert code != 0, (name, mode, err)
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, err)
            assert words in err, (name, err)
            assert not (out / "plan.json").exists(), name
            errors.append((code, err.replace(str(out), "OUT")))
        assert errors[0] == errors[1], name


def test_dry_run_with_a_fitting_checkpoint_passes_and_says_it_checked(world, capsys):
    tmp_path, recipe, ckpt = world
    code, out, err = run_cli(["synth", recipe, "--checkpoint", ckpt, "--out", tmp_path / "o", "--dry-run"], capsys)
    assert code == 0, err
    assert "checked" in out and "plan written" in out
    code, out, err = run_cli(["synth", recipe, "--out", tmp_path / "o2", "--dry-run"], capsys)
    assert code == 0 and "no --checkpoint given" in out, err


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_plan_of_no_image_is_refused_naming_the_quota(world, capsys, dry_run):
    tmp_path, recipe, ckpt = world
    mode = ["--dry-run"] if dry_run else ["--checkpoint", ckpt]
    out = tmp_path / "o"
    code, _, err = run_cli(["synth", recipe, "--out", out, "--quota", "to_count:1", *mode], capsys)
    assert code == 2 and "--quota to_count:1 plans no synthetic image" in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    code, _, err = run_cli(["synth", recipe, "--out", out, "--set", "synth.quota=to_count:1", *mode], capsys)
    assert code == 2 and "'synth.quota' to_count:1 plans no synthetic image" in err and "above 6" in err, err
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["--steps", "0"], "--steps"),
    (["--batch-size", "0"], "--batch-size"),
    (["--guidance", "-1"], "--guidance"),
    (["--sampler", "rflow"], "--sampler 'rflow'"),
    (["--quota", ""], "--quota ''"),
    (["--quota", "to_count:0"], "--quota 'to_count:0'"),
    (["--guidance", "1", "--guidance-from", "g.json"], "exclude each other"),
])
def test_command_line_range_errors_exit_2(world, capsys, args, words):
    tmp_path, recipe, _ = world
    _guidance_file(tmp_path / "g.json")
    args = [str(tmp_path / a) if a == "g.json" else a for a in args]
    code, _, err = run_cli(["synth", recipe, "--out", tmp_path / "o", "--dry-run", *args], capsys)
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_quality_filter_options_are_usage_errors(world, capsys):
    tmp_path, recipe, ckpt = world
    code, _, err = run_cli(["synth", recipe, "--out", tmp_path / "o", "--checkpoint", ckpt,
                            "--min-confidence", "0.5"], capsys)
    assert code == 2 and "--filter-classifier" in err, err
    code, _, err = run_cli(["synth", recipe, "--out", tmp_path / "o", "--checkpoint", ckpt,
                            "--filter-classifier", ckpt, "--min-confidence", "2"], capsys)
    assert code == 2 and "--min-confidence must be in [0, 1]" in err, err
    code, _, err = run_cli(["synth", recipe, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "--checkpoint is required" in err, err


def test_guidance_file_tuned_with_other_steps_is_named_on_stderr(world, capsys):
    tmp_path, recipe, ckpt = world
    from medlt.utils.checkpoint import file_sha256

    g = _guidance_file(tmp_path / "g.json", sha=file_sha256(ckpt), sampler="ddim", steps=2)
    base = ["synth", recipe, "--checkpoint", ckpt, "--guidance-from", g, "--sampler", "ddim"]
    code, out, err = run_cli([*base, "--out", tmp_path / "o25", "--steps", "25", "--dry-run"], capsys)
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "at 2 steps" in lines[0] and "at 25 steps" in lines[0], err
    assert "not a refusal" in lines[0] and "tune-guidance --sampler ddim --steps 25" in lines[0]
    plan = json.loads((tmp_path / "o25" / "plan.json").read_text())
    assert plan["settings"]["guidance_from"]["tuned_steps"] == 2
    # the real run warns before it generates, and generates
    code, out, err = run_cli([*base, "--out", tmp_path / "r3", "--steps", "3"], capsys)
    assert code == 0 and "warning:" in err and "at 3 steps" in err, err
    assert (tmp_path / "r3" / "manifest.csv").is_file()
    # tuned as run: no warning
    code, out, err = run_cli([*base, "--out", tmp_path / "o2", "--steps", "2", "--dry-run"], capsys)
    assert code == 0 and "warning" not in err, err


def test_dry_run_checks_a_latent_checkpoint_and_its_autoencoder_keys(tmp_path, capsys):
    """A latent checkpoint: the dry run reads the autoencoder config it carries (no model built),
    passes when the recipe fits, and refuses an autoencoder architecture key as the real run does."""
    from medlt.autoencoder.train import train_autoencoder
    from tests.autoencoder.test_latent_guidance_decode import _phantom_ct_checkpoint
    from tests.autoencoder.tiny import tiny_recipe
    from tests.diffusion.toy import ToyDataset

    train_autoencoder(tiny_recipe(tmp_path / "a", depth=4), tmp_path / "ae", dataset=ToyDataset(depth=4))
    ckpt, recipe = _phantom_ct_checkpoint(tmp_path, tmp_path / "ae")
    base = ["synth", recipe, "--checkpoint", ckpt, "--steps", "2", "--quota", "to_count:2"]
    code, out, err = run_cli([*base, "--out", tmp_path / "ok", "--dry-run"], capsys)
    assert code == 0 and "checked" in out, err
    errors = []
    for mode in (["--dry-run"], []):
        code, _, err = run_cli([*base, "--out", tmp_path / "bad", "--set", "autoencoder.latent_channels=3", *mode],
                               capsys)
        assert code == 2 and "autoencoder.latent_channels" in err and len(err.strip().splitlines()) == 1, err
        errors.append(err)
    assert errors[0] == errors[1] and not (tmp_path / "bad").exists()
