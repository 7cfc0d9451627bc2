"""Class fidelity of synthetic images: does an image generated for class c show class c?

Definition (the "GAN-test" of Shmelkov et al., ECCV 2018, "How good is my GAN?"): a fixed
*reference classifier* (trained on real images, or a phantom oracle) labels every synthetic image;

- single-label: fidelity_c = #{synthetic images of class c with argmax_k p_k = c} / #{synthetic
  images of class c}, with a 95% Wilson score interval (scipy `binomtest(...).proportion_ci`).
  The confusion (rows: intended class, columns: assigned class, counts) and the share of each
  group's images assigned to each group show where images drift ("tail samples drift to head
  classes": a large tail -> head share);
- multi-label (intended labels = the multi-hot vector each image was generated for):
  AUROC_c of the reference's score p_c over the synthetic set, positives = images generated with c,
  negatives = the others (sklearn `roc_auc_score`; 95% interval by Hanley & McNeil 1982), and
  share_c = #{images generated with c whose p_c >= threshold} / #{images generated with c}
  (Wilson interval). The co-assignment matrix gives, for the images generated with class c
  (row), the share predicted positive for each class j (column).

Group values are means over the group's classes that have synthetic images (head / medium / tail
from the *real* training counts); classes without synthetic images are n/a and enter no mean.
`class_fidelity_single_label` / `class_fidelity_multi_label` are pure functions; the accumulator
collects predictions batch by batch (an int or K floats per image) and calls them.

A judge can only confirm what it recognises. Single-label: fidelity_c is bounded by the judge's
own recall on real images of class c (a judge with real recall 0 on a class reads fidelity 0 for
every generator); `mark_judge_recall` adds that recall per class and keeps the classes whose real
recall is below a threshold out of the fidelity means, naming them and counting the classes that
entered. Multi-label fidelity is an AUROC, free of any threshold, so its ceiling is the judge's
AUROC of class c on the real test images (how well it ranks real images with c above those
without), not a recall at a threshold: `mark_judge_real_auroc` keeps out the classes the judge
ranks at or below chance (real AUROC <= 0.5, or unknown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medlt.data.labels import GROUPS

Z95 = 1.959963984540054


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion successes / n; (nan, nan) when n == 0."""
    if n <= 0:
        return (float("nan"), float("nan"))
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def hanley_mcneil_interval(auroc: float, n_pos: int, n_neg: int, z: float = Z95) -> tuple[float, float]:
    """AUROC ± z·SE with the Hanley & McNeil (1982) standard error, clipped to [0, 1]."""
    a = float(auroc)
    if math.isnan(a) or n_pos < 1 or n_neg < 1:
        return (float("nan"), float("nan"))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    se = math.sqrt(max(var, 0.0))
    return (max(0.0, a - z * se), min(1.0, a + z * se))


def _group_means(values: dict[str, float], names: Sequence[str], groups: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for g in GROUPS:
        vals = [values[n] for n, gg in zip(names, groups, strict=True) if gg == g and not math.isnan(values[n])]
        out[g] = float(np.mean(vals)) if vals else None
    return out


def _mean(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def class_fidelity_single_label(intended, assigned, names: Sequence[str], groups: Sequence[str]) -> dict:
    """Share of the synthetic images of each class that the reference assigns to it.

    intended, assigned: (N,) class indices (the class each image was generated for; the reference
    classifier's argmax). Returns per-class n / count / fidelity / 95% Wilson CI / the class most
    often assigned instead, the intended x assigned confusion counts, group and class means, the
    pooled share, and the intended-group x assigned-group shares."""
    t, p = _np(intended).astype(np.int64).ravel(), _np(assigned).astype(np.int64).ravel()
    k = len(names)
    if t.shape != p.shape:
        raise ValueError(f"intended has {t.size} entries, assigned {p.size}")
    if len(groups) != k:
        raise ValueError(f"{len(groups)} groups for {k} classes")
    for what, a in (("intended", t), ("assigned", p)):
        if a.size and (a.min() < 0 or a.max() >= k):
            raise ValueError(f"{what} has class indices outside [0, {k})")
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (t, p), 1)
    per_class, fid = {}, {}
    for c, name in enumerate(names):
        n = int(conf[c].sum())
        hit = int(conf[c, c])
        fid[name] = hit / n if n else float("nan")
        others = conf[c].copy()
        others[c] = 0
        j = int(others.argmax())
        lo, hi = wilson_interval(hit, n)
        per_class[name] = {
            "group": groups[c], "n_synthetic": n, "assigned_to_intended": hit, "fidelity": fid[name],
            "ci95": [lo, hi],
            "most_assigned_other": ({"class": names[j], "share": others[j] / n} if n and others[j] else None),
        }
    group_share: dict[str, dict[str, float | None]] = {}
    gidx = {g: [c for c in range(k) if groups[c] == g] for g in GROUPS}
    for g in GROUPS:
        rows = conf[gidx[g]] if gidx[g] else np.zeros((0, k), dtype=np.int64)
        total = int(rows.sum())
        group_share[g] = {h: (float(rows[:, gidx[h]].sum()) / total if total and gidx[h] else None)
                          for h in GROUPS} if total else {h: None for h in GROUPS}
    n_all = int(t.size)
    return {
        "mode": "single-label",
        "n_synthetic": n_all,
        "share_assigned_to_intended_pooled": float(np.trace(conf)) / n_all if n_all else float("nan"),
        "mean_class_fidelity": _mean(fid.values()),
        "group_mean_fidelity": _group_means(fid, names, groups),
        "per_class": per_class,
        "confusion_intended_x_assigned": conf.tolist(),
        "assigned_group_share": group_share,
    }


def class_fidelity_multi_label(intended, scores, names: Sequence[str], groups: Sequence[str],
                               threshold: float = 0.5) -> dict:
    """Multi-label class fidelity: per class AUROC of the reference's score for the intended label
    over the synthetic set, and the share of intended labels predicted positive (p_c >= threshold).

    intended: (N, K) 0/1 label vectors the images were generated for; scores: (N, K) sigmoid
    probabilities of the reference classifier."""
    from sklearn.metrics import roc_auc_score

    t, s = _np(intended).astype(np.int64), _np(scores).astype(np.float64)
    k = len(names)
    if t.ndim != 2 or t.shape != s.shape or t.shape[1] != k:
        raise ValueError(f"intended {t.shape} and scores {s.shape} must both be (N, {k})")
    if len(groups) != k:
        raise ValueError(f"{len(groups)} groups for {k} classes")
    pred = s >= threshold
    per_class, auc, share = {}, {}, {}
    co = np.full((k, k), np.nan)
    for c, name in enumerate(names):
        pos = t[:, c] == 1
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        auc[name] = float(roc_auc_score(pos, s[:, c])) if n_pos and n_neg else float("nan")
        hit = int(pred[pos, c].sum())
        share[name] = hit / n_pos if n_pos else float("nan")
        if n_pos:
            co[c] = pred[pos].mean(axis=0)
        per_class[name] = {
            "group": groups[c], "n_intended": n_pos, "n_other": n_neg, "auroc": auc[name],
            "auroc_ci95": list(hanley_mcneil_interval(auc[name], n_pos, n_neg)),
            "intended_predicted_positive": hit, "share_intended_predicted_positive": share[name],
            "ci95": list(wilson_interval(hit, n_pos)),
        }
    return {
        "mode": "multi-label",
        "n_synthetic": int(t.shape[0]),
        "threshold": float(threshold),
        "mean_auroc": _mean(auc.values()),
        "group_mean_auroc": _group_means(auc, names, groups),
        "mean_share_intended_predicted_positive": _mean(share.values()),
        "group_mean_share_intended_predicted_positive": _group_means(share, names, groups),
        "per_class": per_class,
        "co_assignment_intended_x_predicted_share": co.tolist(),
    }


#: multi-label: a judge whose AUROC of a class on real test images is at most this ranks it at chance
CHANCE_AUROC = 0.5


def mark_judge_recall(report: dict, judge_real_recall: dict[str, float], names: Sequence[str],
                      groups: Sequence[str], min_recall: float) -> dict:
    """`report` (a class_fidelity_* result) with the judge's real recall per class: classes with
    recall < min_recall (or unknown) are "judge cannot recognise this class" and enter no mean.

    Adds per_class[c]["judge_real_recall"] / ["judge_recognises"], "judge_min_real_recall",
    "judge_ceiling" ("judge_real_recall"), "classes_judge_cannot_recognise", and "classes_in_means"
    ({"all"|group: [entered, with a value]}); the means (mean_class_fidelity / group_mean_fidelity,
    multi-label mean_auroc / group_mean_auroc and the share means) are recomputed over the recognised
    classes; the means over every class stay under the same keys with the suffix `_all_classes`.
    For a multi-label report use `mark_judge_real_auroc` (its fidelity is threshold-free)."""
    out = _mark_judge(report, judge_real_recall, names, groups, "judge_real_recall", lambda r: r >= min_recall)
    out["judge_min_real_recall"] = float(min_recall)
    return out


def mark_judge_real_auroc(report: dict, judge_real_auroc: dict[str, float], names: Sequence[str],
                          groups: Sequence[str]) -> dict:
    """Multi-label `report` with the judge's AUROC per class on the real test images, the ceiling of
    that class's fidelity AUROC: classes with real AUROC <= CHANCE_AUROC (or unknown) are "judge
    cannot recognise this class" and enter no mean. Adds per_class[c]["judge_real_auroc"] /
    ["judge_recognises"], "judge_ceiling" ("judge_real_auroc"), "judge_real_auroc_above" (0.5) and
    the keys of `mark_judge_recall` otherwise."""
    out = _mark_judge(report, judge_real_auroc, names, groups, "judge_real_auroc", lambda a: a > CHANCE_AUROC)
    out["judge_real_auroc_above"] = CHANCE_AUROC
    return out


def _mark_judge(report: dict, judge_real: dict[str, float], names: Sequence[str], groups: Sequence[str],
                key: str, recognises) -> dict:
    out = dict(report)
    multi = report.get("mode") == "multi-label"
    per = {n: dict(v) for n, v in report["per_class"].items()}
    recognised = {}
    for n in names:
        r = judge_real.get(n)
        r = None if r is None or (isinstance(r, float) and math.isnan(r)) else float(r)
        per[n][key] = r
        recognised[n] = r is not None and bool(recognises(r))
        per[n]["judge_recognises"] = recognised[n]
    out["per_class"] = per
    out["judge_ceiling"] = key
    out["classes_judge_cannot_recognise"] = [n for n in names if not recognised[n]]
    mean_keys = ([("mean_auroc", "group_mean_auroc", "auroc"),
                  ("mean_share_intended_predicted_positive", "group_mean_share_intended_predicted_positive",
                   "share_intended_predicted_positive")] if multi
                 else [("mean_class_fidelity", "group_mean_fidelity", "fidelity")])
    for mk, gk, vk in mean_keys:
        vals = {n: float(per[n][vk]) for n in names}
        kept = {n: (v if recognised[n] else float("nan")) for n, v in vals.items()}
        out[f"{mk}_all_classes"], out[f"{gk}_all_classes"] = report[mk], report[gk]
        out[mk] = _mean(kept.values())
        out[gk] = _group_means(kept, names, groups)
    vk = mean_keys[0][2]
    has = {n: not math.isnan(float(per[n][vk])) for n in names}
    out["classes_in_means"] = {"all": [sum(has[n] and recognised[n] for n in names), sum(has.values())]}
    for g in GROUPS:
        members = [n for n, gg in zip(names, groups, strict=True) if gg == g]
        out["classes_in_means"][g] = [sum(has[n] and recognised[n] for n in members), sum(has[n] for n in members)]
    return out


def group_mean_auroc_intervals(intended, scores, groups: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
                               confidence: float = 0.95, baseline_scores=None) -> dict[str, dict | None]:
    """Per group, the mean over its classes of the multi-label AUROC_c (as in
    `class_fidelity_multi_label`) with a percentile bootstrap interval: the images are resampled with
    replacement `n_boot` times and every class's AUROC recomputed; a class without a positive or a
    negative in a resample leaves that resample's mean. Groups without a class with an AUROC: None.

    `baseline_scores` (N, K): another generator's scores on images made for the same intended labels
    and seeds, row for row (a paired design); each group then also gets `delta` = mean − baseline mean
    with its interval from the same resamples."""
    from sklearn.metrics import roc_auc_score

    t, s = _np(intended).astype(np.int64), _np(scores).astype(np.float64)
    if t.ndim != 2 or t.shape != s.shape or t.shape[1] != len(groups):
        raise ValueError(f"intended {t.shape} and scores {s.shape} must both be (N, {len(groups)})")
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")

    base = None if baseline_scores is None else _np(baseline_scores).astype(np.float64)
    if base is not None and base.shape != s.shape:
        raise ValueError(f"baseline_scores {base.shape} must have the shape of scores {s.shape}")

    def group_means(idx: np.ndarray, sc: np.ndarray) -> dict[str, float]:
        out = {}
        for g in GROUPS:
            vals = []
            for c in (c for c, gg in enumerate(groups) if gg == g):
                pos = t[idx, c] == 1
                if pos.any() and not pos.all():
                    vals.append(roc_auc_score(pos, sc[idx, c]))
            out[g] = float(np.mean(vals)) if vals else float("nan")
        return out

    n = t.shape[0]
    every = np.arange(n)
    point = group_means(every, s)
    point_base = group_means(every, base) if base is not None else None
    rng = np.random.default_rng(seed)
    boots, boots_delta = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        m = group_means(idx, s)
        boots.append(m)
        if base is not None:
            mb = group_means(idx, base)
            boots_delta.append({g: m[g] - mb[g] for g in GROUPS})
    lo_q, hi_q = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2

    def interval(values: list[float]) -> tuple[list[float], int]:
        b = np.array(values)
        b = b[~np.isnan(b)]
        return ([float(np.percentile(b, lo_q)), float(np.percentile(b, hi_q))] if len(b) else [float("nan")] * 2,
                int(len(b)))

    res: dict[str, dict | None] = {}
    for g in GROUPS:
        if math.isnan(point[g]):
            res[g] = None
            continue
        ci, used = interval([x[g] for x in boots])
        res[g] = {"mean": point[g], "ci95": ci, "classes": sum(gg == g for gg in groups), "n_boot": used}
        if point_base is not None:
            dci, _ = interval([x[g] for x in boots_delta])
            res[g]["delta"] = point[g] - point_base[g]
            res[g]["delta_ci95"] = dci
    return res


class ClassFidelityAccumulator:
    """Collects (intended labels, reference probabilities) batch by batch; `compute()` calls the
    pure function of the label mode. Keeps one int (single-label) or K floats per image."""

    def __init__(self, names: Sequence[str], groups: Sequence[str], *, multi_label: bool,
                 threshold: float = 0.5):
        self.names, self.groups = list(names), list(groups)
        self.multi_label, self.threshold = multi_label, threshold
        self._t: list[np.ndarray] = []
        self._p: list[np.ndarray] = []

    def update(self, intended, probs) -> None:
        p = _np(probs)
        k = len(self.names)
        if self.multi_label:
            self._t.append(_np(intended).reshape(-1, k).astype(np.int8))
            self._p.append(p.reshape(-1, k).astype(np.float32))
        else:
            self._t.append(_np(intended).astype(np.int64).ravel())
            self._p.append((p.argmax(axis=1) if p.ndim == 2 else p).astype(np.int64).ravel())

    def compute(self) -> dict:
        if not self._t:
            raise ValueError("no synthetic images were scored")
        t, p = np.concatenate(self._t), np.concatenate(self._p)
        if self.multi_label:
            return class_fidelity_multi_label(t, p, self.names, self.groups, self.threshold)
        return class_fidelity_single_label(t, p, self.names, self.groups)
