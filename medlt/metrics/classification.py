"""Classification metrics (docs/evaluation.md), computed with scikit-learn, never re-derived by hand.

Single-label (`y_true`, `y_pred`: int class indices):
- `balanced_accuracy`: mean per-class recall over the classes present in `y_true`
  (= `sklearn.metrics.balanced_accuracy_score`). Note: MONAI's ConfusionMatrixMetric
  "balanced accuracy" is the per-class (TPR+TNR)/2, a different number.
- `per_class_recall`, `group_mean_recall` (head/medium/tail), `macro_f1`, `matthews_corrcoef`.

Multi-label (`y_true`: (N, K) 0/1, `y_score`: (N, K) probabilities):
- `mean_per_class_balanced_accuracy_tpr_tnr`: per class (TPR+TNR)/2 at a threshold, averaged.
- `macro_auroc`, `mean_average_precision` (mAP, the CXR-LT challenge metric); per class too.

Accumulators (`SingleLabelAccumulator`, `MultiLabelAccumulator`) collect predictions batch by
batch (a few bytes per test image) and call the same pure functions, so streamed == batch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from medlt.data.labels import GROUPS


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_single(y_true, y_pred, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t, p = _np(y_true).astype(np.int64).ravel(), _np(y_pred).astype(np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries, y_pred {p.size}")
    if t.size == 0:
        raise ValueError("no predictions to score")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.min() < 0 or a.max() >= num_classes:
            raise ValueError(f"{name} has class indices outside [0, {num_classes})")
    return t, p


def balanced_accuracy(y_true, y_pred, num_classes: int) -> float:
    """Mean per-class recall over classes present in y_true (sklearn balanced_accuracy_score)."""
    t, p = _check_single(y_true, y_pred, num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        return float(skm.balanced_accuracy_score(t, p))


def per_class_recall(y_true, y_pred, num_classes: int) -> list[float]:
    """Recall of every class 0..K-1; NaN for a class with no true sample."""
    t, p = _check_single(y_true, y_pred, num_classes)
    r = skm.recall_score(t, p, labels=list(range(num_classes)), average=None, zero_division=np.nan)
    return [float(v) for v in r]


def group_mean_recall(recalls: Sequence[float], groups: Sequence[str]) -> dict[str, float | None]:
    """Mean recall of the head / medium / tail classes (NaN recalls skipped); None for an empty group."""
    out: dict[str, float | None] = {}
    for g in GROUPS:
        vals = [r for r, gg in zip(recalls, groups, strict=True) if gg == g and not math.isnan(r)]
        out[g] = float(np.mean(vals)) if vals else None
    return out


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    """sklearn f1_score(average='macro') over the classes seen in y_true or y_pred."""
    t, p = _check_single(y_true, y_pred, num_classes)
    return float(skm.f1_score(t, p, average="macro", zero_division=0))


def matthews_corrcoef(y_true, y_pred, num_classes: int) -> float:
    t, p = _check_single(y_true, y_pred, num_classes)
    return float(skm.matthews_corrcoef(t, p))


def confusion_matrix(y_true, y_pred, num_classes: int) -> list[list[int]]:
    """Rows = true class, columns = predicted class."""
    t, p = _check_single(y_true, y_pred, num_classes)
    return skm.confusion_matrix(t, p, labels=list(range(num_classes))).tolist()


def single_label_report(y_true, y_pred, num_classes: int, groups: Sequence[str]) -> dict:
    rec = per_class_recall(y_true, y_pred, num_classes)
    return {
        "n": int(_np(y_true).size),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, num_classes),
        "per_class_recall": rec,
        "group_mean_recall": group_mean_recall(rec, groups),
        "macro_f1": macro_f1(y_true, y_pred, num_classes),
        "mcc": matthews_corrcoef(y_true, y_pred, num_classes),
        "confusion_matrix": confusion_matrix(y_true, y_pred, num_classes),
    }


# ---------------------------------------------------------------- multi-label

def _check_multi(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    t, s = _np(y_true).astype(np.int64), _np(y_score).astype(np.float64)
    if t.ndim != 2 or t.shape != s.shape:
        raise ValueError(f"multi-label y_true {t.shape} and y_score {s.shape} must both be (N, K)")
    return t, s


def per_class_balanced_accuracy_tpr_tnr(y_true, y_score, threshold: float = 0.5) -> list[float]:
    """(TPR+TNR)/2 per class (binary balanced accuracy of each column); NaN if a column is all one
    value (TPR or TNR undefined)."""
    t, s = _check_multi(y_true, y_score)
    out = []
    for k in range(t.shape[1]):
        if t[:, k].min() == t[:, k].max():
            out.append(float("nan"))
            continue
        out.append(float(skm.balanced_accuracy_score(t[:, k], (s[:, k] >= threshold).astype(int))))
    return out


def mean_per_class_balanced_accuracy_tpr_tnr(y_true, y_score, threshold: float = 0.5) -> float:
    return float(np.nanmean(per_class_balanced_accuracy_tpr_tnr(y_true, y_score, threshold)))


def per_class_auroc(y_true, y_score) -> list[float]:
    t, s = _check_multi(y_true, y_score)
    return [float(skm.roc_auc_score(t[:, k], s[:, k])) if t[:, k].min() != t[:, k].max()
            else float("nan") for k in range(t.shape[1])]


def macro_auroc(y_true, y_score) -> float:
    return float(np.nanmean(per_class_auroc(y_true, y_score)))


def per_class_average_precision(y_true, y_score) -> list[float]:
    t, s = _check_multi(y_true, y_score)
    return [float(skm.average_precision_score(t[:, k], s[:, k])) if t[:, k].max() > 0
            else float("nan") for k in range(t.shape[1])]


def mean_average_precision(y_true, y_score) -> float:
    return float(np.nanmean(per_class_average_precision(y_true, y_score)))


def multi_label_report(y_true, y_score, groups: Sequence[str], threshold: float = 0.5) -> dict:
    bacc = per_class_balanced_accuracy_tpr_tnr(y_true, y_score, threshold)
    auc = per_class_auroc(y_true, y_score)
    ap = per_class_average_precision(y_true, y_score)
    return {
        "n": int(_np(y_true).shape[0]),
        "threshold": threshold,
        "mean_per_class_balanced_accuracy_tpr_tnr": float(np.nanmean(bacc)),
        "per_class_balanced_accuracy_tpr_tnr": bacc,
        "group_mean_balanced_accuracy_tpr_tnr": group_mean_recall(bacc, groups),
        "macro_auroc": float(np.nanmean(auc)),
        "per_class_auroc": auc,
        "mean_average_precision": float(np.nanmean(ap)),
        "per_class_average_precision": ap,
    }


# ---------------------------------------------------------------- accumulators

class SingleLabelAccumulator:
    """Collects (true, predicted) class indices batch by batch; `compute()` = single_label_report."""

    def __init__(self, num_classes: int, groups: Sequence[str]):
        self.num_classes, self.groups = num_classes, list(groups)
        self._t: list[np.ndarray] = []
        self._p: list[np.ndarray] = []

    def update(self, y_true, probs_or_pred) -> None:
        p = _np(probs_or_pred)
        if p.ndim == 2:
            p = p.argmax(axis=1)
        self._t.append(_np(y_true).astype(np.int64).ravel())
        self._p.append(p.astype(np.int64).ravel())

    def compute(self) -> dict:
        return single_label_report(np.concatenate(self._t), np.concatenate(self._p),
                                   self.num_classes, self.groups)


class MultiLabelAccumulator:
    """Collects multi-hot targets and probabilities batch by batch; `compute()` = multi_label_report."""

    def __init__(self, num_classes: int, groups: Sequence[str], threshold: float = 0.5):
        self.num_classes, self.groups, self.threshold = num_classes, list(groups), threshold
        self._t: list[np.ndarray] = []
        self._s: list[np.ndarray] = []

    def update(self, y_true, y_score) -> None:
        self._t.append(_np(y_true).reshape(-1, self.num_classes))
        self._s.append(_np(y_score).reshape(-1, self.num_classes))

    def compute(self) -> dict:
        return multi_label_report(np.concatenate(self._t), np.concatenate(self._s), self.groups,
                                  self.threshold)
