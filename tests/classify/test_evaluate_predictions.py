"""`medlt evaluate` writes per-image predictions and bootstrap CIs; `medlt report` pairs two
evaluations of the same test images."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fakedata  # noqa: E402

from medlt.cli import main  # noqa: E402


def _cli(args):
    try:
        main(list(map(str, args)))
    except SystemExit as e:
        assert not e.code, args


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    base = tmp_path_factory.mktemp("evalpred")
    (base / "real").mkdir()
    recipe = fakedata.make_real(base / "real")
    _cli(["classify", recipe, "--out", base / "clf", "--set", "classifier.epochs=1"])
    _cli(["evaluate", recipe, "--classifier", base / "clf", "--out", base / "eval", "--set",
          "evaluate.bootstrap_resamples=200"])
    return base, recipe


def test_predictions_files_and_confidence_intervals(evaluated):
    from medlt.classify import load_classifier
    from medlt.classify.predictions import read_predictions
    from medlt.metrics import balanced_accuracy

    base, _ = evaluated
    rep = json.loads((base / "eval" / "report.json").read_text())
    ls = load_classifier(base / "clf").label_space
    for role, n in (("test", 18), ("test_longtail", 31)):
        m = rep["classification"][role]
        assert m["predictions_file"] == f"predictions_{role}.csv"
        p = read_predictions(base / "eval" / m["predictions_file"], ls)
        assert len(p["ids"]) == n == m["n"]
        assert balanced_accuracy(p["true"], p["predicted"], 3) == pytest.approx(m["balanced_accuracy"])
        assert np.allclose(p["scores"].sum(1), 1.0, atol=1e-5)
        ci = m["confidence_intervals"]
        assert ci["n_resamples"] == 200 and ci["level"] == 0.95
        lo, hi = ci["balanced_accuracy"]
        assert lo <= m["balanced_accuracy"] <= hi
        assert len(ci["per_class_recall"]) == 3 and set(ci["group_mean_recall"]) == {"head", "medium", "tail"}
        assert len(ci["macro_f1"]) == 2
    assert "95% CI" in (base / "eval" / "report.md").read_text()


def test_report_pairs_an_evaluation_with_itself(evaluated, capsys):
    base, _ = evaluated
    capsys.readouterr()
    # the same folder twice is refused as a command-line error; a copy of it pairs with itself
    import shutil

    twin = base / "eval-copy"
    if not twin.exists():
        shutil.copytree(base / "eval", twin)
    _cli(["report", base / "eval", twin, "--bootstrap-resamples", "100"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "| balanced accuracy |" in line]
    assert len(rows) == 2 and all("not significant" in r for r in rows)
