"""Class fidelity: pure functions on known predictions, the accumulator, the intervals."""

import math

import numpy as np
import pytest
import torch

from medlt.metrics.fidelity import (
    ClassFidelityAccumulator,
    class_fidelity_multi_label,
    class_fidelity_single_label,
    group_mean_auroc_intervals,
    hanley_mcneil_interval,
    wilson_interval,
)

NAMES = ["Head", "Mid", "Tail"]
GROUPS = ["head", "medium", "tail"]


def test_single_label_known_predictions_and_drift_to_head():
    # Head: 10 images, 9 right; Mid: 4 images, 2 right, 2 -> Head; Tail: 5 images, 1 right, 3 -> Head, 1 -> Mid
    intended = [0] * 10 + [1] * 4 + [2] * 5
    assigned = [0] * 9 + [1] + [1, 1, 0, 0] + [2, 0, 0, 0, 1]
    r = class_fidelity_single_label(intended, assigned, NAMES, GROUPS)
    pc = r["per_class"]
    assert [pc[n]["fidelity"] for n in NAMES] == pytest.approx([0.9, 0.5, 0.2])
    assert [pc[n]["n_synthetic"] for n in NAMES] == [10, 4, 5]
    assert r["confusion_intended_x_assigned"] == [[9, 1, 0], [2, 2, 0], [3, 1, 1]]
    assert pc["Tail"]["most_assigned_other"] == {"class": "Head", "share": pytest.approx(0.6)}
    assert r["mean_class_fidelity"] == pytest.approx((0.9 + 0.5 + 0.2) / 3)
    assert r["share_assigned_to_intended_pooled"] == pytest.approx(12 / 19)
    assert r["group_mean_fidelity"] == {"head": pytest.approx(0.9), "medium": pytest.approx(0.5),
                                        "tail": pytest.approx(0.2)}
    # the tail group's images went to the head group 60% of the time
    assert r["assigned_group_share"]["tail"] == pytest.approx({"head": 0.6, "medium": 0.2, "tail": 0.2})
    for n in NAMES:
        lo, hi = pc[n]["ci95"]
        assert 0 <= lo < pc[n]["fidelity"] < hi <= 1


def test_class_without_synthetic_images_is_na_and_out_of_means():
    r = class_fidelity_single_label([0, 0, 1], [0, 1, 1], NAMES, GROUPS)
    assert math.isnan(r["per_class"]["Tail"]["fidelity"]) and r["group_mean_fidelity"]["tail"] is None
    assert r["mean_class_fidelity"] == pytest.approx(0.75)
    assert r["per_class"]["Tail"]["most_assigned_other"] is None
    assert r["per_class"]["Mid"]["most_assigned_other"] is None  # all right: nothing drifted


def test_wilson_interval_against_formula():
    k, n, z = 7, 20, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0, abs=1e-12) and 0.2 < hi < 0.35  # never a zero-width interval at 0
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < wilson_interval(5, 10)[1] - wilson_interval(5, 10)[0]
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_wilson_coverage_simulation():
    rng = np.random.default_rng(0)
    p, n = 0.2, 40
    hits = 0
    for _ in range(400):
        lo, hi = wilson_interval(int(rng.binomial(n, p)), n)
        hits += lo <= p <= hi
    assert 0.9 <= hits / 400 <= 0.99


def test_multi_label_auroc_and_share():
    intended = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.2], [0.8, 0.7, 0.1], [0.2, 0.4, 0.3], [0.1, 0.2, 0.6], [0.3, 0.9, 0.4],
                       [0.4, 0.2, 0.1]])
    r = class_fidelity_multi_label(intended, scores, NAMES, GROUPS, threshold=0.5)
    from sklearn.metrics import roc_auc_score

    for k, n in enumerate(NAMES):
        assert r["per_class"][n]["auroc"] == pytest.approx(roc_auc_score(intended[:, k], scores[:, k]))
    assert r["per_class"]["Head"]["share_intended_predicted_positive"] == pytest.approx(2 / 3)  # 0.9, 0.8 | 0.4
    assert r["per_class"]["Mid"]["share_intended_predicted_positive"] == pytest.approx(2 / 3)  # 0.7, 0.9 | 0.4
    assert r["per_class"]["Tail"]["share_intended_predicted_positive"] == pytest.approx(1 / 2)
    assert r["per_class"]["Tail"]["n_intended"] == 2 and r["per_class"]["Tail"]["n_other"] == 4
    # co-assignment row Head: images 0, 1, 5 -> predicted positive for Head 2/3, Mid 1/3, Tail 0
    assert r["co_assignment_intended_x_predicted_share"][0] == pytest.approx([2 / 3, 1 / 3, 0])
    assert r["group_mean_auroc"]["tail"] == pytest.approx(r["per_class"]["Tail"]["auroc"])
    lo, hi = r["per_class"]["Head"]["auroc_ci95"]
    assert 0 <= lo <= r["per_class"]["Head"]["auroc"] <= hi <= 1


def test_hanley_mcneil_shrinks_with_n_and_handles_edges():
    w = [hanley_mcneil_interval(0.8, n, n) for n in (5, 50, 500)]
    widths = [hi - lo for lo, hi in w]
    assert widths[0] > widths[1] > widths[2] > 0
    # SE at A = 0.5, n1 = n0 = 50: Q1 = 1/3, Q2 = 1/3 -> var = (0.25 + 98 * (1/3 - 1/4)) / 2500
    se = math.sqrt((0.25 + 98 * (1 / 3 - 0.25)) / 2500)
    assert hanley_mcneil_interval(0.5, 50, 50) == pytest.approx((0.5 - 1.959963984540054 * se,
                                                                  0.5 + 1.959963984540054 * se))
    assert all(math.isnan(v) for v in hanley_mcneil_interval(0.7, 0, 10))


def test_accumulator_equals_pure_function_streamed():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 3, 50)
    probs = rng.random((50, 3))
    acc = ClassFidelityAccumulator(NAMES, GROUPS, multi_label=False)
    for i in range(0, 50, 7):
        acc.update(torch.as_tensor(t[i:i + 7]), torch.as_tensor(probs[i:i + 7]))
    assert acc.compute() == class_fidelity_single_label(t, probs.argmax(1), NAMES, GROUPS)
    tm = rng.integers(0, 2, (50, 3))
    accm = ClassFidelityAccumulator(NAMES, GROUPS, multi_label=True, threshold=0.3)
    for i in range(0, 50, 9):
        accm.update(tm[i:i + 9], probs[i:i + 9])
    got, want = accm.compute(), class_fidelity_multi_label(tm, probs.astype(np.float32), NAMES, GROUPS, 0.3)
    assert got["per_class"] == want["per_class"] and got["threshold"] == 0.3


def test_bad_input():
    with pytest.raises(ValueError, match="outside"):
        class_fidelity_single_label([0, 3], [0, 1], NAMES, GROUPS)
    with pytest.raises(ValueError, match="entries"):
        class_fidelity_single_label([0, 1], [0], NAMES, GROUPS)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        class_fidelity_multi_label(np.zeros((4, 2)), np.zeros((4, 2)), NAMES, GROUPS)
    with pytest.raises(ValueError, match="no synthetic images"):
        ClassFidelityAccumulator(NAMES, GROUPS, multi_label=False).compute()


def test_group_mean_auroc_intervals_point_and_bootstrap():
    rng = np.random.default_rng(1)
    n = 300
    t = (rng.random((n, 4)) < 0.3).astype(int)
    # class 0 separable, class 1 noisy, class 2 random, class 3: no negative (n/a)
    s = np.stack([t[:, 0] + 0.01 * rng.random(n), t[:, 1] + rng.normal(0, 1.0, n), rng.random(n),
                  rng.random(n)], axis=1)
    t[:, 3] = 1
    groups = ["head", "head", "tail", "medium"]
    r = group_mean_auroc_intervals(t, s, groups, n_boot=200, seed=0)
    rep = class_fidelity_multi_label(t, s, ["a", "b", "c", "d"], groups)
    assert r["head"]["mean"] == pytest.approx(rep["group_mean_auroc"]["head"])
    assert r["tail"]["mean"] == pytest.approx(rep["per_class"]["c"]["auroc"])
    assert r["medium"] is None  # its only class has no negative
    for g in ("head", "tail"):
        lo, hi = r[g]["ci95"]
        assert lo < r[g]["mean"] < hi and hi - lo < 0.2
    assert r["tail"]["ci95"][0] < 0.5 < r["tail"]["ci95"][1]  # a random score: the interval holds chance
    assert r["head"]["ci95"][0] > 0.7
    assert r == group_mean_auroc_intervals(t, s, groups, n_boot=200, seed=0)  # seeded
    with pytest.raises(ValueError, match="must both be"):
        group_mean_auroc_intervals(t[:, :3], s, groups)


def test_group_mean_auroc_paired_delta_uses_the_same_resamples():
    rng = np.random.default_rng(2)
    n = 240
    t = (rng.random((n, 2)) < 0.4).astype(int)
    good = t + rng.normal(0, 0.5, (n, 2))
    bad = t + rng.normal(0, 3.0, (n, 2))
    groups = ["head", "tail"]
    r = group_mean_auroc_intervals(t, good, groups, n_boot=200, seed=0, baseline_scores=bad)
    g, b = (group_mean_auroc_intervals(t, x, groups, n_boot=200, seed=0) for x in (good, bad))
    for grp in groups:
        assert r[grp]["delta"] == pytest.approx(g[grp]["mean"] - b[grp]["mean"])
        lo, hi = r[grp]["delta_ci95"]
        assert 0 < lo < r[grp]["delta"] < hi
    same = group_mean_auroc_intervals(t, good, groups, n_boot=50, seed=0, baseline_scores=good)
    assert same["head"]["delta"] == 0 and same["head"]["delta_ci95"] == [0.0, 0.0]
    assert "delta" not in g["head"]
    with pytest.raises(ValueError, match="baseline_scores"):
        group_mean_auroc_intervals(t, good, groups, baseline_scores=bad[:, :1])
