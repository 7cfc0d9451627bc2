"""Seed-averaged paired differences: mean over cells of (metric of B_i − metric of A_i), all pairs
scored on the same test images and resampled together; and the share of the headroom a method
closes (`share_of_headroom`), a ratio of two such means bootstrapped from the same resamples.

For pairs (A_1, B_1), ..., (A_n, B_n) of evaluations on one test set (e.g. a method's classifier
cells and the real-only classifier of the same classifier seed), each bootstrap resample of the test
images (stratified by class, as medlt.metrics.bootstrap does) gives
Δ* = (1/n) Σ_i [m(B_i) − m(A_i)] evaluated on that resample; the interval is the percentile interval
of Δ* and the point value Δ on all images. This is a CI for the seed-averaged difference *given the
trained models*: test-set sampling noise only. The spread over seeds (training noise) is reported
beside it, not inside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlt.data.labels import GROUPS, LabelSpace
from medlt.metrics.bootstrap import (
    confusion_matrices,
    multi_label_metrics,
    percentile_interval,
    rarest_positive_strata,
    resampled,
    single_label_metrics,
)


def _metrics(w, true, pred, label_space: LabelSpace, groups, threshold: float) -> dict:
    if label_space.multi_label:
        m = multi_label_metrics(w, true, pred, groups, threshold)
        return {"headline": m["mean_per_class_balanced_accuracy_tpr_tnr"],
                **{g: m["group_mean_balanced_accuracy_tpr_tnr"][g] for g in GROUPS}}
    m = single_label_metrics(confusion_matrices(w, true, pred, label_space.num_classes), groups)
    return {"headline": m["balanced_accuracy"], **{g: m["group_mean_recall"][g] for g in GROUPS}}


def _check_pairs(pairs) -> np.ndarray:
    if not pairs:
        raise ValueError("no pairs")
    true = pairs[0][0]["true"]
    for a, b in pairs:
        if not (np.array_equal(a["true"], true) and np.array_equal(b["true"], true)):
            raise ValueError("every pair must be scored on the same test images in the same order")
    return true


def _differences(pairs, w, t, key, label_space, groups, threshold) -> dict:
    acc = None
    for a, b in pairs:
        ma = _metrics(w, t, a[key], label_space, groups, threshold)
        mb = _metrics(w, t, b[key], label_space, groups, threshold)
        d = {k: mb[k] - ma[k] for k in ma}
        acc = d if acc is None else {k: acc[k] + d[k] for k in acc}
    return {k: v / len(pairs) for k, v in acc.items()}


def share_of_headroom(method_pairs: Sequence[tuple[dict, dict]], ideal_pairs: Sequence[tuple[dict, dict]],
                      label_space: LabelSpace, groups: Sequence[str], *, threshold: float = 0.5,
                      n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """The share of the headroom a method closes, (mean Δ(method − copies)) / (mean Δ(ideal − copies)),
    with numerator and denominator evaluated on the SAME bootstrap resample of the test images each
    time (so the ratio's interval carries their correlation). `method_pairs`: (copies, method)
    prediction dicts; `ideal_pairs`: (copies, ideal). Returns per key ("headline" and each group)
    {"headroom": {difference, interval, significant}, "share": {value, interval} or None,
    "shown": bool}: the share is shown only where the headroom's interval lies above 0."""
    true = _check_pairs(list(method_pairs) + list(ideal_pairs))
    key = "scores" if label_space.multi_label else "predicted"
    t = true if label_space.multi_label else np.asarray(true, np.int64).ravel()
    strata = rarest_positive_strata(true) if label_space.multi_label else t

    def both(w):
        num = _differences(method_pairs, w, t, key, label_space, groups, threshold)
        den = _differences(ideal_pairs, w, t, key, label_space, groups, threshold)
        return {"num": num, "den": den}

    res = resampled(strata, n_resamples, seed, both)
    point = both(np.ones((1, len(strata))))
    out: dict = {"n_method_pairs": len(method_pairs), "n_ideal_pairs": len(ideal_pairs), "n_resamples": n_resamples,
                 "seed": seed, "level": level,
                 "resampling": "test images, stratified by class; numerator and headroom on the same resample"}
    for k in point["num"]:
        h, m = float(point["den"][k][0]), float(point["num"][k][0])
        if np.isnan(h) or np.isnan(m):
            out[k] = None
            continue
        hiv = percentile_interval(np.asarray(res["den"][k]), level)
        hl, hh = float(hiv[0]), float(hiv[1])
        shown = bool(hl > 0)
        entry = {"headroom": {"difference": h, "interval": [hl, hh], "significant": bool(hl > 0 or hh < 0)},
                 "shown": shown, "share": None}
        if shown:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.asarray(res["num"][k]) / np.asarray(res["den"][k])
            ratio[~np.isfinite(ratio)] = np.nan
            siv = percentile_interval(ratio, level)
            entry["share"] = {"value": m / h, "interval": [float(siv[0]), float(siv[1])]}
        out[k] = entry
    return out


def mean_paired_difference(pairs: Sequence[tuple[dict, dict]], label_space: LabelSpace, groups: Sequence[str], *,
                           threshold: float = 0.5, n_resamples: int = 1000, seed: int = 0,
                           level: float = 0.95) -> dict:
    """`pairs`: (A, B) prediction dicts from medlt.report.paired.aligned_predictions (same images,
    same order, same true labels in every pair). Returns {"headline"|group: {"difference",
    "interval", "significant"} or None}, plus n_pairs and the bootstrap settings."""
    true = _check_pairs(pairs)
    key = "scores" if label_space.multi_label else "predicted"
    t = true if label_space.multi_label else np.asarray(true, np.int64).ravel()
    strata = rarest_positive_strata(true) if label_space.multi_label else t

    def diffs(w):
        return _differences(pairs, w, t, key, label_space, groups, threshold)

    res = resampled(strata, n_resamples, seed, diffs)
    point = diffs(np.ones((1, len(strata))))
    out: dict = {"n_pairs": len(pairs), "n_resamples": n_resamples, "seed": seed, "level": level,
                 "resampling": "test images, stratified by class, the same resample for every pair"}
    for k, v in point.items():
        p = float(v[0])
        if np.isnan(p):
            out[k] = None
            continue
        iv = percentile_interval(np.asarray(res[k]), level)
        lo, hi = float(iv[0]), float(iv[1])
        ok = not (np.isnan(lo) or np.isnan(hi))
        out[k] = {"difference": p, "interval": [lo, hi] if ok else None,
                  "significant": bool(ok and (lo > 0 or hi < 0))}
    return out
