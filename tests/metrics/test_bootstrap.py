"""Bootstrap intervals: resampled metrics equal sklearn's on the resampled images, intervals cover
the truth ~95% of the time in simulation, and the paired difference of identical runs is 0."""

import numpy as np
import pytest
from sklearn import metrics as skm

from medlt.metrics.bootstrap import (
    confusion_matrices,
    multi_label_bootstrap,
    multi_label_metrics,
    paired_difference,
    percentile_interval,
    rarest_positive_strata,
    single_label_bootstrap,
    single_label_metrics,
    stratified_weights,
)
from medlt.metrics.classification import multi_label_report, single_label_report

GROUPS = ["head", "head", "medium", "tail"]


def _single(seed=0, per_class=30, k=4, acc=(0.8, 0.6, 0.4, 0.2)):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), per_class)
    right = rng.random(y.size) < np.asarray(acc)[y]
    wrong = (y + rng.integers(1, k, y.size)) % k
    return y, np.where(right, y, wrong)


def test_stratified_weights_keep_class_sizes():
    y = np.repeat([0, 1, 2], [5, 10, 3])
    w = stratified_weights(y, 200, seed=1)
    assert w.shape == (200, 18) and np.all(w.sum(1) == 18)
    for c, n in enumerate([5, 10, 3]):
        assert np.all(w[:, y == c].sum(1) == n)
    assert np.array_equal(w, stratified_weights(y, 200, seed=1))
    assert not np.array_equal(w, stratified_weights(y, 200, seed=2))


def test_resampled_metrics_equal_sklearn_on_the_resampled_images():
    y, p = _single(per_class=12)
    w = stratified_weights(y, 5, seed=3)
    m = single_label_metrics(confusion_matrices(w, y, p, 4), GROUPS)
    for b in range(5):
        idx = np.repeat(np.arange(y.size), w[b].astype(int))
        ref = single_label_report(y[idx], p[idx], 4, GROUPS)
        assert m["balanced_accuracy"][b] == pytest.approx(ref["balanced_accuracy"])
        assert m["macro_f1"][b] == pytest.approx(ref["macro_f1"])
        assert m["per_class_recall"][b] == pytest.approx(ref["per_class_recall"])
        assert m["group_mean_recall"]["head"][b] == pytest.approx(ref["group_mean_recall"]["head"])
    # macro-F1 over classes seen in y_true or y_pred (a class never predicted nor present is left out)
    one = np.ones((1, 4))
    c = confusion_matrices(one, [0, 0, 1, 1], [0, 1, 1, 1], 5)
    assert single_label_metrics(c, ["head"] * 5)["macro_f1"][0] == pytest.approx(
        skm.f1_score([0, 0, 1, 1], [0, 1, 1, 1], average="macro", zero_division=0))


def test_multi_label_weighted_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    t = (rng.random((80, 3)) < [0.5, 0.2, 0.1]).astype(int)
    t[:3] = 0
    s = np.clip(t * 0.3 + rng.random((80, 3)) * 0.8, 0, 1).round(1)  # rounded: ties
    w = stratified_weights(rarest_positive_strata(t), 4, seed=5)
    m = multi_label_metrics(w, t, s, ["head", "medium", "tail"], 0.5)
    for b in range(4):
        idx = np.repeat(np.arange(80), w[b].astype(int))
        ref = multi_label_report(t[idx], s[idx], ["head", "medium", "tail"], 0.5)
        for key in ("mean_per_class_balanced_accuracy_tpr_tnr", "macro_auroc", "mean_average_precision"):
            assert m[key][b] == pytest.approx(ref[key]), key
    strata = rarest_positive_strata(t)
    assert np.all(strata[:3] == 3)
    rarest = int(np.argmin(t.sum(0)))
    assert np.all(strata[t[:, rarest] == 1] == rarest)  # the rarest class defines the stratum


def test_interval_covers_true_balanced_accuracy_about_95_percent():
    acc = np.array([0.9, 0.7, 0.5, 0.3, 0.2])
    truth = acc.mean()
    covered = 0
    for sim in range(200):
        y, p = _single(seed=100 + sim, per_class=30, k=5, acc=acc)
        iv = single_label_bootstrap(y, p, 5, ["head"] * 5, n_resamples=400, seed=sim)["balanced_accuracy"]
        covered += iv[0] <= truth <= iv[1]
    assert 0.90 <= covered / 200 <= 0.99


def test_bootstrap_output_keys_and_shapes():
    y, p = _single()
    ci = single_label_bootstrap(y, p, 4, GROUPS, n_resamples=300, seed=0)
    point = single_label_report(y, p, 4, GROUPS)
    assert ci["n_resamples"] == 300 and ci["level"] == 0.95 and "stratified" in ci["method"]
    lo, hi = ci["balanced_accuracy"]
    assert lo < point["balanced_accuracy"] < hi
    assert len(ci["per_class_recall"]) == 4 and all(a <= b for a, b in ci["per_class_recall"])
    assert set(ci["group_mean_recall"]) == {"head", "medium", "tail"}
    assert ci["macro_f1"][0] < point["macro_f1"] < ci["macro_f1"][1]
    rng = np.random.default_rng(1)
    t = (rng.random((60, 3)) < 0.3).astype(int)
    ml = multi_label_bootstrap(t, rng.random((60, 3)), ["head", "medium", "tail"], n_resamples=100)
    assert {"mean_per_class_balanced_accuracy_tpr_tnr", "macro_auroc", "mean_average_precision",
            "group_mean_balanced_accuracy_tpr_tnr", "per_class_balanced_accuracy_tpr_tnr"} <= set(ml)
    assert percentile_interval(np.full((10, 2), np.nan)).shape == (2, 2)


def test_paired_difference_identical_and_better():
    y, p = _single(per_class=30)
    same = paired_difference(y, p, p.copy(), GROUPS, num_classes=4, n_resamples=500)
    assert same["balanced_accuracy"]["difference"] == 0 and same["balanced_accuracy"]["interval"] == [0.0, 0.0]
    assert not same["balanced_accuracy"]["significant"]
    better = np.where(np.random.default_rng(9).random(y.size) < 0.6, y, p)
    d = paired_difference(y, p, better, GROUPS, num_classes=4, n_resamples=500)
    assert d["balanced_accuracy"]["difference"] > 0.15 and d["balanced_accuracy"]["significant"]
    assert d["balanced_accuracy"]["interval"][0] > 0
    assert d["group_mean_recall"]["tail"]["difference"] > 0
    rng = np.random.default_rng(2)
    t = (rng.random((90, 3)) < 0.3).astype(int)
    s = rng.random((90, 3))
    ml = paired_difference(t, s, s, ["head", "medium", "tail"], multi_label=True, n_resamples=100)
    assert ml["macro_auroc"]["interval"] == [0.0, 0.0] and not ml["macro_auroc"]["significant"]


def test_chunked_resampling_is_seeded_and_consistent(monkeypatch):
    import medlt.metrics.bootstrap as bs

    y, p = _single(per_class=30)
    whole = single_label_bootstrap(y, p, 4, GROUPS, n_resamples=600, seed=4)["balanced_accuracy"]
    monkeypatch.setattr(bs, "CHUNK_CELLS", 250)  # 2 resamples per chunk
    chunked = single_label_bootstrap(y, p, 4, GROUPS, n_resamples=600, seed=4)["balanced_accuracy"]
    assert chunked == single_label_bootstrap(y, p, 4, GROUPS, n_resamples=600, seed=4)["balanced_accuracy"]
    assert np.allclose(chunked, whole, atol=0.03)
    m = bs.resampled(y, 7, 0, lambda w: {"n": w.sum(1)})
    assert m["n"].shape == (7,) and np.all(m["n"] == y.size)
