"""Class fidelity and CAS through `medlt evaluate` on a small PNG dataset written at test time
(tests/classify/fakedata.py: 3 classes, a real long tail and a synth-like folder)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import fakedata  # noqa: E402

from medlt.cli import main  # noqa: E402


def run_cli(args, capsys=None):
    try:
        main(list(map(str, args)))
        code = 0
    except SystemExit as e:
        code = e.code or 0
    if capsys is None:
        return code, "", ""
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    b = tmp_path_factory.mktemp("casworld")
    (b / "real").mkdir()
    (b / "syn").mkdir()
    recipe = fakedata.make_real(b / "real")
    fakedata.make_synthetic(b / "real", b / "syn")
    merged = fakedata.make_merged(b / "real", b / "syn", b)
    fast = ["--set", "evaluate.roles=[test]", "--set", "evaluate.bootstrap_resamples=0"]
    assert run_cli(["classify", recipe, "--out", b / "clf_real", "--set", "classifier.epochs=1"])[0] == 0
    assert run_cli(["classify", recipe, "--out", b / "clf_merged", "--train-manifest", merged,
                    "--set", "classifier.epochs=1"])[0] == 0
    assert run_cli(["evaluate", recipe, "--classifier", b / "clf_real", "--synthetic", b / "syn", "--cas",
                    "--out", b / "eval", "--set", "classifier.epochs=2", *fast])[0] == 0
    return {"b": b, "recipe": recipe, "fast": fast}


def _stack(ds):
    x = torch.stack([ds[i]["image"] for i in range(len(ds))])
    y = np.array([int(ds[i]["label"]) for i in range(len(ds))])
    return x, y


def test_cas_numbers_are_the_synthetic_only_classifier_on_real_test(world):
    from medlt.classify import load_classifier
    from medlt.data.loaders import build_dataset
    from medlt.metrics import balanced_accuracy, per_class_recall
    from medlt.recipe import load_recipe

    b = world["b"]
    cas = json.loads((b / "eval" / "report.json").read_text())["generation"]["cas"]
    assert cas["test_split"] == "balanced-test" and cas["n_train_synthetic"] == 31
    assert cas["train_class_counts"] == [10, 10, 11]  # synthetic counts, not the real long tail
    assert cas["classifier"].startswith("classifier:resnet18-2d[train=synthetic-only]@")
    clf = load_classifier(b / "eval" / "cas_classifier")
    assert clf.checkpoint_sha256 == cas["checkpoint_sha256"] and clf.train_class_counts == [10, 10, 11]
    x, y = _stack(build_dataset(load_recipe(world["recipe"]), "test"))
    pred = clf.predict_proba(x).argmax(1).numpy()
    assert cas["n"] == len(y) == 18
    assert cas["balanced_accuracy"] == pytest.approx(balanced_accuracy(y, pred, 3))
    assert cas["per_class_recall"] == pytest.approx(per_class_recall(y, pred, 3))
    assert cas["balanced_accuracy"] > 0.6  # the synthetic bands are the real ones, slightly brighter
    for r, (lo, hi) in zip(cas["per_class_recall"], cas["per_class_recall_ci95"], strict=True):
        assert lo <= r <= hi and hi - lo > 0.05
    src = json.loads((b / "eval" / "cas_classifier" / "cas_source.json").read_text())
    from medlt.utils.checkpoint import file_sha256

    assert src["manifest_sha256"] == file_sha256(b / "syn" / "manifest.csv")
    md = (b / "eval" / "report.md").read_text()
    assert "Classification Accuracy Score (CAS)" in md and "figures/cas_recall.png" in md
    assert (b / "eval" / "figures" / "cas_recall.png").stat().st_size > 1000


def test_class_fidelity_default_reference_is_the_real_only_classifier(world):
    from medlt.classify import load_classifier
    from medlt.classify.data import synthetic_recipe
    from medlt.data.loaders import build_dataset
    from medlt.recipe import load_recipe

    b = world["b"]
    fid = json.loads((b / "eval" / "report.json").read_text())["generation"]["class_fidelity"]
    clf = load_classifier(b / "clf_real")
    ref = fid["reference_classifier"]
    assert ref["name"] == f"classifier:resnet18-2d[train=real]@{clf.checkpoint_sha256[:12]}"
    assert ref["trained_on"] == "real" and ref["source"] == "the evaluated classifier"
    x, y = _stack(build_dataset(synthetic_recipe(load_recipe(world["recipe"]), b / "syn"), "train"))
    pred = clf.predict_proba(x).argmax(1).numpy()
    for c, name in enumerate(fakedata.CLASSES):
        v = fid["per_class"][name]
        assert v["n_synthetic"] == int((y == c).sum())
        assert v["fidelity"] == pytest.approx(float((pred[y == c] == c).mean()))
    conf = np.array(fid["confusion_intended_x_assigned"])
    assert conf.sum() == len(y) == fid["n_synthetic"] and np.trace(conf) == int((pred == y).sum())
    md = (b / "eval" / "report.md").read_text()
    assert "Class fidelity" in md and "most often assigned instead" in md


def test_classifier_that_saw_synthetic_needs_a_reference(world, capsys):
    b, r = world["b"], world["recipe"]
    code, out, err = run_cli(["evaluate", r, "--classifier", b / "clf_merged", "--synthetic", b / "syn",
                              "--feature-extractor", b / "clf_real", "--out", b / "eval_m", *world["fast"]], capsys)
    assert code == 0, err
    fid = json.loads((b / "eval_m" / "report.json").read_text())["generation"]["class_fidelity"]
    assert "--reference-classifier" in fid["skipped"]
    assert "class fidelity skipped" in out
    code, out, err = run_cli(["evaluate", r, "--classifier", b / "clf_merged", "--synthetic", b / "syn",
                              "--feature-extractor", b / "clf_real", "--reference-classifier", b / "clf_real",
                              "--out", b / "eval_m2", *world["fast"]], capsys)
    assert code == 0, err
    fid = json.loads((b / "eval_m2" / "report.json").read_text())["generation"]["class_fidelity"]
    ref = fid["reference_classifier"]
    assert ref["source"] == "--reference-classifier" and ref["trained_on"] == "real"
    assert ref["real_test"]["split"] == "balanced-test" and 0 <= ref["real_test"]["balanced_accuracy"] <= 1
    assert "class fidelity (classifier:resnet18-2d[train=real]@" in out


def test_error_paths(world, tmp_path, capsys, tiny):
    b, r = world["b"], world["recipe"]
    code, _, err = run_cli(["evaluate", r, "--classifier", b / "clf_real", "--cas", "--out", tmp_path / "e"], capsys)
    assert code != 0 and "add --synthetic" in err and "Traceback" not in err
    # a reference classifier with other classes: one line naming its checkpoint
    make_data, tiny_recipe = tiny
    from medlt.classify.train import fit_classifier

    fit_classifier(tiny_recipe(tmp_path, epochs=1), make_data([6, 6, 6, 6]), tmp_path / "other", show_progress=False)
    code, _, err = run_cli(["evaluate", r, "--classifier", b / "clf_real", "--synthetic", b / "syn",
                            "--reference-classifier", tmp_path / "other", "--out", tmp_path / "e2",
                            *world["fast"]], capsys)
    assert code != 0 and "Traceback" not in err
    assert f"reference classifier {tmp_path / 'other' / 'checkpoints' / 'best.pt'} was trained on classes" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e2").exists()  # refused before any pass over the images
    # a CAS folder trained on another synthetic set is refused before training
    from medlt.classify.cas import classification_accuracy_score
    from medlt.errors import DataError
    from medlt.recipe import load_recipe

    other_syn = tmp_path / "syn2"
    other_syn.mkdir()
    fakedata.make_synthetic(b / "real", other_syn, counts=(3, 3, 3), plant_copy=False)
    with pytest.raises(DataError, match="another synthetic set"):
        classification_accuracy_score(load_recipe(r), other_syn, b / "eval" / "cas_classifier",
                                      ["head", "medium", "tail"])
    # a manifest with real rows is not a synthetic-only training set
    import pandas as pd

    df = pd.read_csv(other_syn / "manifest.csv", dtype=str)
    df.loc[2, "source"] = "real"
    df.to_csv(other_syn / "manifest.csv", index=False)
    with pytest.raises(DataError, match="1 of its 9 training rows are not source=synthetic"):
        classification_accuracy_score(load_recipe(r), other_syn, tmp_path / "cas", ["head", "medium", "tail"])
    assert not (tmp_path / "cas").exists()


def test_cas_warns_about_classes_absent_from_the_synthetic_set(world, tmp_path, capsys):
    """A synthetic set without class Rare: CAS is computed, but one warning line (and report.json /
    report.md) names the missing class."""
    b, r = world["b"], world["recipe"]
    syn = tmp_path / "syn_no_rare"
    syn.mkdir()
    fakedata.make_synthetic(b / "real", syn, counts=(4, 4, 0), plant_copy=False)
    code, out, err = run_cli(["evaluate", r, "--classifier", b / "clf_real", "--synthetic", syn, "--cas",
                              "--out", tmp_path / "e", "--set", "classifier.epochs=1",
                              *world["fast"]], capsys)
    assert code == 0, err
    warn = [line for line in err.splitlines() if line.startswith("warning: CAS")]
    assert len(warn) == 1 and "1 of 3 classes have no synthetic image (Rare)" in warn[0]
    cas = json.loads((tmp_path / "e" / "report.json").read_text())["generation"]["cas"]
    assert cas["absent_classes"] == ["Rare"] and cas["train_class_counts"] == [4, 4, 0]
    assert "Rare" in cas["warning"]
    assert "Warning: 1 of 3 classes have no synthetic image (Rare)" in (tmp_path / "e" / "report.md").read_text()
    # every class present: no warning, an empty list
    assert json.loads((b / "eval" / "report.json").read_text())["generation"]["cas"]["absent_classes"] == []
