import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from medlt import metrics as M


def _random_preds(seed, n=300, k=7):
    rng = np.random.default_rng(seed)
    # long-tailed truth, noisy predictions
    p = np.array([0.5, 0.2, 0.12, 0.08, 0.05, 0.03, 0.02])[:k]
    y = rng.choice(k, size=n, p=p / p.sum())
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
    return y, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_label_metrics_equal_sklearn(seed):
    y, pred = _random_preds(seed)
    assert M.balanced_accuracy(y, pred, 7) == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-12)
    assert M.balanced_accuracy(torch.tensor(y), torch.tensor(pred), 7) == pytest.approx(
        skm.balanced_accuracy_score(y, pred))
    rec = M.per_class_recall(y, pred, 7)
    assert np.allclose(rec, skm.recall_score(y, pred, average=None, labels=range(7)))
    assert np.nanmean(rec) == pytest.approx(M.balanced_accuracy(y, pred, 7))
    assert M.macro_f1(y, pred, 7) == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert M.matthews_corrcoef(y, pred, 7) == pytest.approx(skm.matthews_corrcoef(y, pred))


def test_absent_class_is_nan_and_skipped_like_sklearn():
    y = np.array([0, 0, 1, 1, 1])
    pred = np.array([0, 2, 1, 1, 0])  # class 2 predicted but never true
    rec = M.per_class_recall(y, pred, 3)
    assert np.isnan(rec[2])
    assert M.balanced_accuracy(y, pred, 3) == pytest.approx((0.5 + 2 / 3) / 2)


def test_monai_tpr_tnr_balanced_accuracy_differs_from_mean_recall():
    from monai.metrics import ConfusionMatrixMetric

    y, pred = _random_preds(5)
    k = 7
    onehot = lambda a: torch.nn.functional.one_hot(torch.tensor(a), k).float()  # noqa: E731
    monai = ConfusionMatrixMetric(metric_name="balanced accuracy", compute_sample=False, reduction="sum_batch")
    monai(onehot(pred), onehot(y))
    per_class_tpr_tnr = monai.aggregate()[0].flatten().numpy()
    ours = M.balanced_accuracy(y, pred, k)
    assert abs(per_class_tpr_tnr.mean() - ours) > 0.05  # a different quantity
    # ...and our multi-label "(TPR+TNR)/2" metric is exactly MONAI's definition
    ml = M.per_class_balanced_accuracy_tpr_tnr(onehot(y).numpy(), onehot(pred).numpy())
    assert np.allclose(ml, per_class_tpr_tnr, atol=1e-6)


def test_group_means():
    rec = [1.0, 0.5, 0.0, float("nan"), 0.25]
    groups = ["head", "head", "medium", "tail", "tail"]
    g = M.group_mean_recall(rec, groups)
    assert g == {"head": 0.75, "medium": 0.0, "tail": 0.25}
    assert M.group_mean_recall([1.0], ["head"])["tail"] is None


def test_multilabel_equal_sklearn_and_accumulator_equals_batch():
    rng = np.random.default_rng(3)
    n, k = 200, 5
    y = (rng.random((n, k)) < [0.5, 0.3, 0.2, 0.1, 0.05]).astype(int)
    s = np.clip(y * 0.4 + rng.random((n, k)) * 0.7, 0, 1)
    auc = M.per_class_auroc(y, s)
    assert np.allclose(auc, [skm.roc_auc_score(y[:, i], s[:, i]) for i in range(k)])
    assert M.macro_auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s, average="macro"))
    assert M.mean_average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s, average="macro"))
    b = M.per_class_balanced_accuracy_tpr_tnr(y, s)
    pred = (s >= 0.5).astype(int)
    for i in range(k):
        tpr = (pred[:, i] & y[:, i]).sum() / y[:, i].sum()
        tnr = ((1 - pred[:, i]) & (1 - y[:, i])).sum() / (1 - y[:, i]).sum()
        assert b[i] == pytest.approx((tpr + tnr) / 2)
    groups = ["head"] * 2 + ["tail"] * 3
    acc = M.MultiLabelAccumulator(k, groups)
    for i in range(0, n, 37):
        acc.update(torch.tensor(y[i:i + 37]), torch.tensor(s[i:i + 37]))
    assert acc.compute() == M.multi_label_report(y, s, groups)


def test_single_label_accumulator_equals_batch():
    y, pred = _random_preds(9)
    probs = np.eye(7)[pred] * 0.9 + 0.01
    acc = M.SingleLabelAccumulator(7, ["head"] * 3 + ["medium"] * 2 + ["tail"] * 2)
    for i in range(0, len(y), 50):
        acc.update(torch.tensor(y[i:i + 50]), torch.tensor(probs[i:i + 50]))
    out = acc.compute()
    assert out == M.single_label_report(y, pred, 7, acc.groups)
    assert np.array(out["confusion_matrix"]).sum() == len(y)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="outside"):
        M.balanced_accuracy([0, 5], [0, 1], 3)
    with pytest.raises(ValueError, match="entries"):
        M.balanced_accuracy([0, 1], [0], 3)
