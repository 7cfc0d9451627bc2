"""classifier.finish: a last stage on the real training rows only (crt-real: cRT's re-balanced head;
finetune-real: the whole network), from the best main-stage weights, the same for every arm."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from mixdata import Recording, arm_manifests, with_classifier  # noqa: E402

from medlt.classify.data import classifier_data, synthetic_recipe  # noqa: E402
from medlt.classify.train import fit_classifier  # noqa: E402
from medlt.data.samplers import ClassBalancedSampler  # noqa: E402
from medlt.errors import DataError, RecipeError  # noqa: E402
from medlt.recipe.load import recipe_from_resolved  # noqa: E402
from medlt.utils.checkpoint import load_checkpoint  # noqa: E402


class Stop(Exception):
    pass


def record_finish(data, log: list, stop_at_call: int | None = None) -> None:
    """Wrap data.real_train: each call appends (balanced, [batch ids ...]); call `stop_at_call` raises."""
    make = data.real_train

    def wrapped(balanced):
        if stop_at_call is not None and len(log) + 1 == stop_at_call:
            raise Stop
        batches: list = []
        log.append((balanced, batches))
        return Recording(make(balanced), batches)

    data.real_train = wrapped


def real_train_ids(manifest: Path) -> set[str]:
    df = pd.read_csv(manifest, dtype=str)
    return set(df[(df["source"] == "real") & (df["split"] == "train")]["id"])


def test_finetune_real_trains_on_real_rows_only(tmp_path):
    recipe, arms = arm_manifests(tmp_path)
    r = with_classifier(recipe, finish="finetune-real", finish_epochs=1, finish_lr=1e-3)
    data = classifier_data(r, train_manifest=arms["copies+synthetic"])
    main_ids: list = []
    data.train = Recording(data.train, main_ids)
    finish: list = []
    record_finish(data, finish)
    summary = fit_classifier(r, data, tmp_path / "run", show_progress=False)
    seen_main = {i for b in main_ids for i in b}
    assert {data.train_sources[i] for i in seen_main} == {"real", "copy", "synthetic"}
    assert len(finish) == 1 and finish[0][0] is False  # one epoch, plain shuffling
    seen = [i for b in finish[0][1] for i in b]
    # every real training row once, and nothing else: no copy, no synthetic row
    assert sorted(seen) == sorted(real_train_ids(arms["copies+synthetic"]))
    assert {data.train_sources[i] for i in seen} == {"real"}
    # recorded: summary, history, resolved recipe, checkpoints
    assert summary["finish"] == "finetune-real" and summary["finish_real_items"] == 62
    assert [h["stage"] for h in summary["history"]] == ["main", "finetune-real"]
    rec = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())["classifier"]
    assert (rec["finish"], rec["finish_epochs"], rec["finish_lr"]) == ("finetune-real", 1, 1e-3)
    ck = tmp_path / "run" / "checkpoints"
    assert load_checkpoint(ck / "best_main.pt")["stage"] == "main"
    assert load_checkpoint(ck / "best.pt")["stage"] == "finetune-real"


def test_crt_real_retrains_the_head_on_balanced_real_rows_and_resumes(tmp_path):
    recipe, arms = arm_manifests(tmp_path)
    r = with_classifier(recipe, finish="crt-real", finish_epochs=2)
    run = tmp_path / "run"
    data = classifier_data(r, train_manifest=arms["synthetic"])
    finish: list = []
    record_finish(data, finish, stop_at_call=2)  # interrupted before the second finishing epoch
    with pytest.raises(Stop):
        fit_classifier(r, data, run, show_progress=False)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["stage"] == "crt-real"
    data = classifier_data(r, train_manifest=arms["synthetic"])
    record_finish(data, finish)
    summary = fit_classifier(r, data, run, show_progress=False)
    assert [h["stage"] for h in summary["history"]] == ["main", "crt-real", "crt-real"]
    assert len(finish) == 2 and all(balanced for balanced, _ in finish)
    assert isinstance(data.real_train(True).sampler, ClassBalancedSampler)
    real = real_train_ids(arms["synthetic"])
    seen = {i for _, batches in finish for b in batches for i in b}
    assert seen <= real and {data.train_sources[i] for i in seen} == {"real"}
    # the backbone is the best main stage's; only the head was re-trained
    main = load_checkpoint(run / "checkpoints" / "best_main.pt")["model"]
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["stage"] == "crt-real"
    for k, v in main.items():
        if k.startswith("backbone."):
            assert torch.equal(v, best["model"][k]), k
    assert not torch.equal(main["head.weight"], best["model"]["head.weight"])


def test_every_arm_finishes_on_the_same_images(tmp_path):
    recipe, arms = arm_manifests(tmp_path)
    r = with_classifier(recipe, finish="crt-real")
    real = real_train_ids(arms["real"])
    for arm, manifest in arms.items():
        data = classifier_data(r, train_manifest=manifest)
        for balanced in (False, True):
            assert set(data.real_train(balanced).dataset.ids) == real, arm
        assert data.real_train_counts == [40, 16, 6], arm


def test_refusals(tiny, tmp_path):
    d = {"name": "x", "data": {"format": "manifest", "root": str(tmp_path)},
         "classifier": {"method": "crt", "finish": "crt-real"}}
    with pytest.raises(RecipeError, match="'classifier.finish': 'crt-real' cannot follow method 'crt'") as e:
        recipe_from_resolved(d)
    assert "\n" not in str(e.value)
    # in-memory data whose rows are not all real, without a loader over the real rows
    make_data, tiny_recipe = tiny
    data = make_data([12, 4])
    data.train_sources = {it["id"]: ("synthetic" if it["id"].startswith("c1") else "real")
                          for it in data.train.dataset.items}
    with pytest.raises(DataError, match="classifier.finish: the training set has synthetic rows and no loader"):
        fit_classifier(tiny_recipe(tmp_path, epochs=1, finish="crt-real", finish_epochs=1), data, tmp_path / "r1",
                       show_progress=False)


def test_synthetic_only_training_set_has_nothing_to_finish_on(tmp_path, capsys):
    """CAS trains the recipe's classifier on a synthetic set alone: no finishing stage (said in
    summary.json and on stderr), and the logit adjustment's prior is that set's own counts."""
    recipe, _ = arm_manifests(tmp_path)
    r = with_classifier(synthetic_recipe(recipe, tmp_path / "syn"), finish="crt-real", method="logit-adjusted")
    data = classifier_data(r)
    with pytest.raises(DataError, match="classifier.finish: the training set has no real row"):
        data.real_train(True)
    summary = fit_classifier(r, data, tmp_path / "run", show_progress=False)
    assert [h["stage"] for h in summary["history"]] == ["main"]
    assert summary["finish_skipped"].startswith("the training set has no real row")
    assert "classifier.finish 'crt-real' skipped: the training set has no real row" in capsys.readouterr().err
    assert summary["logit_adjustment"]["prior_counts"] == [2, 6, 10]
    assert summary["logit_adjustment"]["prior_from"] == "all rows (none is real)"


def test_all_real_in_memory_data_finishes_on_its_own_loaders(tiny, tmp_path):
    make_data, tiny_recipe = tiny
    summary = fit_classifier(tiny_recipe(tmp_path, epochs=1, finish="finetune-real", finish_epochs=1),
                             make_data([12, 4]), tmp_path / "run", show_progress=False)
    assert [h["stage"] for h in summary["history"]] == ["main", "finetune-real"]


@pytest.mark.slow  # two processes on two shared cores, ~30 s
def test_torchrun_two_ranks_finetune_real(tmp_path):
    import json
    import os
    import shutil
    import subprocess

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not installed next to this python")
    _, arms = arm_manifests(tmp_path)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    cmd = [str(torchrun if torchrun.exists() else "torchrun"), "--standalone", "--nproc_per_node", "2", "-m",
           "medlt", "classify", str(tmp_path / "data" / "recipe.yaml"), "--out", str(tmp_path / "run"),
           "--train-manifest", str(arms["copies+synthetic"]), "--set", "classifier.epochs=1",
           "--set", "classifier.method=logit-adjusted", "--set", "classifier.synthetic_loss_weight=0.5",
           "--set", "classifier.finish=finetune-real", "--set", "classifier.finish_epochs=1"]
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [h["stage"] for h in summary["history"]] == ["main", "finetune-real"]
    assert summary["finish_real_items"] == 62 and summary["logit_adjustment"]["prior_counts"] == [40, 16, 6]
