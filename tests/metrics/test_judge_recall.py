"""Classes the judge cannot recognise on real images are named and kept out of fidelity means."""

import math

import numpy as np
import pytest

from medlt.metrics.fidelity import class_fidelity_multi_label, class_fidelity_single_label, mark_judge_recall

NAMES = ["A", "B", "C", "D"]
GROUPS = ["head", "head", "tail", "tail"]


def test_single_label_means_leave_out_unrecognised_classes():
    intended = np.repeat([0, 1, 2, 3], 10)
    assigned = intended.copy()
    assigned[10:14] = 0  # B: 6/10
    assigned[20:30] = 0  # C: 0/10 (the judge never says C)
    assigned[30:35] = 1  # D: 5/10
    rep = class_fidelity_single_label(intended, assigned, NAMES, GROUPS)
    assert rep["mean_class_fidelity"] == pytest.approx((1 + 0.6 + 0 + 0.5) / 4)
    out = mark_judge_recall(rep, {"A": 0.9, "B": 0.7, "C": 0.0, "D": 0.5}, NAMES, GROUPS, 0.5)
    assert out["classes_judge_cannot_recognise"] == ["C"]
    assert out["per_class"]["C"]["judge_recognises"] is False and out["per_class"]["C"]["judge_real_recall"] == 0.0
    assert out["per_class"]["D"]["judge_recognises"] is True  # the threshold itself is recognised
    assert out["mean_class_fidelity"] == pytest.approx((1 + 0.6 + 0.5) / 3)
    assert out["group_mean_fidelity"]["tail"] == pytest.approx(0.5)
    assert out["group_mean_fidelity"]["head"] == pytest.approx(0.8)
    assert out["mean_class_fidelity_all_classes"] == pytest.approx(rep["mean_class_fidelity"])
    assert out["classes_in_means"] == {"all": [3, 4], "head": [2, 2], "medium": [0, 0], "tail": [1, 2]}
    # the input report is not changed
    assert "judge_real_recall" not in rep["per_class"]["A"]


def test_unknown_recall_and_multi_label():
    rng = np.random.default_rng(0)
    t = np.eye(4, dtype=int)[np.repeat(np.arange(4), 8)]
    s = np.clip(t * 0.6 + rng.random(t.shape) * 0.5, 0, 1)
    rep = class_fidelity_multi_label(t, s, NAMES, GROUPS)
    out = mark_judge_recall(rep, {"A": 0.8, "B": float("nan"), "C": 0.9, "D": 0.2}, NAMES, GROUPS, 0.5)
    assert out["classes_judge_cannot_recognise"] == ["B", "D"]
    aucs = [rep["per_class"][n]["auroc"] for n in NAMES]
    assert out["mean_auroc"] == pytest.approx((aucs[0] + aucs[2]) / 2)
    assert out["group_mean_auroc"]["tail"] == pytest.approx(aucs[2])
    assert math.isclose(out["mean_auroc_all_classes"], float(np.mean(aucs)))
    assert out["classes_in_means"]["all"] == [2, 4]
