"""`medlt report DIR1 DIR2`: paired bootstrap CI of the bAcc difference on the same test images;
CIs rendered in report.md / report.html."""

import json

import numpy as np
import pytest

from medlt.classify.predictions import read_predictions, write_predictions
from medlt.data.labels import LabelSpace
from medlt.metrics.bootstrap import single_label_bootstrap
from medlt.metrics.classification import single_label_report
from medlt.report.write import json_safe, write_report
from tests.cli_run import run_cli as _run

NAMES = ["No Finding", "Effusion", "Hernia"]
GROUPS = ["head", "medium", "tail"]
LS = LabelSpace(tuple(NAMES), False)


def _truth(n_per_class=40):
    return np.repeat(np.arange(3), n_per_class)


def _eval_dir(path, y, pred, ids, train_source="real", full=False):
    """An evaluation folder as `medlt evaluate` writes it: report.json (full: + report.md/html) and
    predictions_test.csv."""
    probs = np.full((y.size, 3), 0.1)
    probs[np.arange(y.size), pred] = 0.8
    rep = single_label_report(y, pred, 3, GROUPS)
    rep["confidence_intervals"] = single_label_bootstrap(y, pred, 3, GROUPS, n_resamples=200, seed=0)
    rep["predictions_file"] = "predictions_test.csv"
    result = {"created_utc": "2026-01-01T00:00:00+00:00", "recipe_name": "unit", "recipe_sha256": "ab" * 32,
              "recipe": {"name": "unit", "classifier": {"threshold": 0.5}},
              "classifier": {"checkpoint": "/x/best.pt", "checkpoint_sha256": "cd" * 32, "architecture": "resnet18",
                             "method": "erm", "train_manifest": "", "train_source": train_source,
                             "train_class_counts": [1500, 300, 12]},
              "label_space": {"names": NAMES, "multi_label": False}, "train_class_counts": [1500, 300, 12],
              "groups": GROUPS, "group_thresholds": [100, 1000],
              "classification": {"test": {"split": "balanced-test", **rep}}}
    if full:
        write_report(path, result, {})
    else:
        path.mkdir(parents=True)
        (path / "report.json").write_text(json.dumps(json_safe(result)))
    write_predictions(path, "test", LS, y, probs, ids)
    return path




@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("paired")
    rng = np.random.default_rng(0)
    y = _truth()
    ids = [f"img{i:03d}.png" for i in range(y.size)]
    pred = np.where(rng.random(y.size) < 0.45, y, rng.integers(0, 3, y.size))
    better = np.where(rng.random(y.size) < 0.8, y, pred)
    a = _eval_dir(tmp_path / "eval_a", y, pred, ids, full=True)
    perm = rng.permutation(y.size)  # same images, another order: matched by id
    same = _eval_dir(tmp_path / "eval_same", y[perm], pred[perm], [ids[i] for i in perm])
    good = _eval_dir(tmp_path / "eval_good", y, better, ids, train_source="real+synthetic")
    return {"a": a, "same": same, "good": good, "y": y, "ids": ids, "pred": pred, "tmp": tmp_path}


def test_predictions_roundtrip(runs):
    back = read_predictions(runs["a"] / "predictions_test.csv", LS)
    assert back["ids"] == runs["ids"] and np.array_equal(back["true"], runs["y"])
    assert np.array_equal(back["predicted"], runs["pred"]) and back["scores"].shape == (120, 3)
    header = (runs["a"] / "predictions_test.csv").read_text().splitlines()[0]
    assert header == "id,true_class,predicted_class,prob:No Finding,prob:Effusion,prob:Hernia"


def test_identical_predictions_not_significant(runs, capsys):
    code, out, err = _run(["report", runs["a"], runs["same"], "--bootstrap-resamples", "300"], capsys)
    assert code == 0, err
    row = next(line for line in out.splitlines() if "| eval_same |" in line and "| balanced accuracy |" in line)
    assert "not significant" in row and "[+0.000, +0.000]" in row
    assert "Paired differences against eval_a" in out


def test_clearly_better_run_is_significant(runs, capsys):
    code, out, err = _run(["report", runs["a"], runs["good"], "--bootstrap-resamples", "300"], capsys)
    assert code == 0, err
    row = next(line for line in out.splitlines() if "| eval_good |" in line and "| balanced accuracy |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-1] == "significant" and float(cells[5]) > 0.2
    lo = float(cells[6].strip("[]").split(",")[0])
    assert lo > 0
    assert any("| tail mean recall |" in line for line in out.splitlines())


def test_different_test_sets_are_an_error(runs, capsys):
    y, ids = runs["y"], list(runs["ids"])
    ids[5] = "other.png"
    other = _eval_dir(runs["tmp"] / "eval_other", y, runs["pred"], ids)
    code, _, err = _run(["report", runs["a"], other], capsys)
    assert code != 0 and "other test images" in err and "img005.png" in err and "Traceback" not in err


def test_missing_predictions_is_stated(runs, capsys):
    bare = runs["tmp"] / "eval_bare"
    bare.mkdir()
    (bare / "report.json").write_text((runs["same"] / "report.json").read_text())
    code, out, err = _run(["report", runs["a"], bare], capsys)
    assert code == 0, err
    assert "no paired comparison" in out and "predictions_test.csv" in out


def test_report_renders_confidence_intervals(runs):
    md = (runs["a"] / "report.md").read_text()
    html = (runs["a"] / "report.html").read_text()
    ci = json.loads((runs["a"] / "report.json").read_text())["classification"]["test"]["confidence_intervals"]
    text = f"[{ci['balanced_accuracy'][0]:.3f}, {ci['balanced_accuracy'][1]:.3f}]"
    assert text in md and text in html
    assert "95% confidence intervals: percentile bootstrap, stratified by true class" in md
    assert md.count("| Hernia | tail | 12 |") == 1
    hernia = next(line for line in md.splitlines() if line.startswith("| Hernia | tail | 12 |"))
    lo, hi = ci["per_class_recall"][2]
    assert f"[{lo:.3f}, {hi:.3f}]" in hernia


def test_multi_label_predictions_and_paired_role(tmp_path):
    from medlt.report.paired import paired_role

    ls = LabelSpace(("A", "B", "C"), True)
    rng = np.random.default_rng(3)
    t = (rng.random((90, 3)) < 0.3).astype(int)
    t[:10] = 0  # normal scans
    s = np.clip(t * 0.4 + rng.random((90, 3)) * 0.6, 0, 1)
    ids = [f"v{i}" for i in range(90)]
    for name, scores in (("a", s), ("b", s), ("c", np.clip(t * 0.9 + rng.random((90, 3)) * 0.1, 0, 1))):
        write_predictions(tmp_path / name, "test", ls, t, scores, ids, threshold=0.5)
    back = read_predictions(tmp_path / "a" / "predictions_test.csv", ls)
    assert np.array_equal(back["true"], t) and np.allclose(back["scores"], s)
    header = (tmp_path / "a" / "predictions_test.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["id", "true:A", "true:B", "true:C"] and header[4] == "predicted:A" and header[7] == "score:A"
    same = paired_role(tmp_path / "a", tmp_path / "b", "test", ls, ["head", "medium", "tail"], n_resamples=200)
    assert not same["macro_auroc"]["significant"] and same["macro_auroc"]["difference"] == 0
    better = paired_role(tmp_path / "a", tmp_path / "c", "test", ls, ["head", "medium", "tail"], n_resamples=200)
    assert better["macro_auroc"]["significant"] and better["macro_auroc"]["difference"] > 0.03
    assert better["mean_per_class_balanced_accuracy_tpr_tnr"]["interval"][0] > 0
