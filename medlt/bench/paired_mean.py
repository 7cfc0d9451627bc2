"""Seed-averaged paired differences: mean over cells of (metric of B_i − metric of A_i), all pairs
scored on the same test images and resampled together; and the share of the headroom a method
closes (`share_of_headroom`), a ratio of two such means bootstrapped from the same resamples.

For seed pairs (A_1, B_1), ..., (A_n, B_n) of evaluations on one test set (e.g. a method's
classifier cells g<s>/c<k> and the real-only classifier of the same classifier seed), each bootstrap
resample b of the test images (stratified by class, as medlt.metrics.bootstrap does) gives every
pair's difference d_i(b) = m(B_i) − m(A_i) on that resample. Two 95% percentile intervals:

- "test images": Δ*(b) = (1/n) Σ_i d_i(b). A CI for the seed-averaged difference *given the trained
  models*: test-set sampling noise only.
- "seeds + test images" (hierarchical bootstrap): per resample, n seed pairs are drawn with
  replacement (medlt.metrics.bootstrap.seed_pair_counts, a stream of its own) and then the test
  images as above; Δ*(b) = mean of d_i(b) over the drawn pairs. It adds the training noise of the
  generator and classifier seeds. With identical seed pairs it is the test-images interval; with one
  seed pair there is no seed noise to measure and it is None.

The point value Δ is the mean difference on all images, and `per_pair` lists each pair's d_i.
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
    ratio_interval,
    resampled,
    seed_pair_counts,
    seed_resampled_mean,
    single_label_metrics,
)

TEST_IMAGES = "test images, stratified by class, the same resample for every pair"
SEEDS_AND_TEST_IMAGES = ("hierarchical: per resample the seed pairs drawn with replacement, then the test images "
                         "as above")


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


def _per_pair_differences(pairs, w, t, key, label_space, groups, threshold) -> dict:
    """{headline|group: (B, n_pairs)} differences m(B_i) − m(A_i) on the resamples w (B, N)."""
    cols: dict = {}
    for a, b in pairs:
        ma = _metrics(w, t, a[key], label_space, groups, threshold)
        mb = _metrics(w, t, b[key], label_space, groups, threshold)
        for k in ma:
            cols.setdefault(k, []).append(mb[k] - ma[k])
    return {k: np.stack(v, axis=1) for k, v in cols.items()}


def _mean_over_pairs(d: np.ndarray) -> np.ndarray:
    return seed_resampled_mean(d, np.ones_like(d))


def _setup(pairs, label_space: LabelSpace):
    true = _check_pairs(pairs)
    key = "scores" if label_space.multi_label else "predicted"
    t = true if label_space.multi_label else np.asarray(true, np.int64).ravel()
    strata = rarest_positive_strata(true) if label_space.multi_label else t
    return key, t, strata


def _interval(values, level) -> list[float] | None:
    iv = percentile_interval(np.asarray(values), level)
    lo, hi = float(iv[0]), float(iv[1])
    return None if np.isnan(lo) or np.isnan(hi) else [lo, hi]


def _significant(iv) -> bool:
    return bool(iv is not None and (iv[0] > 0 or iv[1] < 0))


def share_of_headroom(method_pairs: Sequence[tuple[dict, dict]], ideal_pairs: Sequence[tuple[dict, dict]],
                      label_space: LabelSpace, groups: Sequence[str], *, threshold: float = 0.5,
                      n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """The share of the headroom a method closes, (mean Δ(method − copies)) / (mean Δ(ideal − copies)),
    with numerator and denominator evaluated on the SAME bootstrap resample of the test images each
    time (so the ratio's interval carries their correlation). `method_pairs`: (copies, method)
    prediction dicts; `ideal_pairs`: (copies, ideal). Returns per key ("headline" and each group)
    {"headroom": {difference, interval, significant, interval_seeds_and_test_images,
    significant_seeds_and_test_images}, "share": {value, interval, unbounded,
    interval_seeds_and_test_images, unbounded_seeds_and_test_images} or None, "shown": bool}: the share
    is shown only where the headroom's test-image interval lies above 0.

    No resample is dropped from the share's interval: a resample with zero headroom gives ±inf (and
    0/0 counts as either end, medlt.metrics.bootstrap.ratio_interval), so an interval end can be
    ±inf, marked in `unbounded` as [low end infinite, high end infinite]. The seed-inclusive interval
    draws the method's seed pairs and the ideal arm's classifier seeds independently."""
    key, t, strata = _setup(list(method_pairs) + list(ideal_pairs), label_space)

    def both(w):
        return {"num": _per_pair_differences(method_pairs, w, t, key, label_space, groups, threshold),
                "den": _per_pair_differences(ideal_pairs, w, t, key, label_space, groups, threshold)}

    res = resampled(strata, n_resamples, seed, both)
    point = both(np.ones((1, len(strata))))
    n_m, n_i = len(method_pairs), len(ideal_pairs)
    with_seeds = n_m > 1 or n_i > 1
    cm = seed_pair_counts(n_m, n_resamples, seed)
    ci = seed_pair_counts(n_i, n_resamples, seed + 1)
    out: dict = {"n_method_pairs": n_m, "n_ideal_pairs": n_i, "n_resamples": n_resamples,
                 "seed": seed, "level": level,
                 "resampling": "test images, stratified by class; numerator and headroom on the same resample",
                 "resampling_seeds_and_test_images": (
                     SEEDS_AND_TEST_IMAGES + " (method pairs and ideal pairs drawn independently)"
                     if with_seeds else None)}
    for k in point["num"]:
        h, m = float(np.mean(point["den"][k][0])), float(np.mean(point["num"][k][0]))
        if np.isnan(h) or np.isnan(m):
            out[k] = None
            continue
        den, num = _mean_over_pairs(res["den"][k]), _mean_over_pairs(res["num"][k])
        den_s = seed_resampled_mean(res["den"][k], ci) if with_seeds else None
        num_s = seed_resampled_mean(res["num"][k], cm) if with_seeds else None
        hiv = _interval(den, level)
        hiv_s = _interval(den_s, level) if with_seeds else None
        shown = bool(hiv is not None and hiv[0] > 0)
        entry = {"headroom": {"difference": h, "interval": hiv, "significant": _significant(hiv),
                              "interval_seeds_and_test_images": hiv_s,
                              "significant_seeds_and_test_images": _significant(hiv_s)},
                 "shown": shown, "share": None}
        if shown:
            siv = ratio_interval(num, den, level)
            share = {"value": m / h, "interval": siv, "unbounded": [bool(np.isinf(x)) for x in siv],
                     "interval_seeds_and_test_images": None, "unbounded_seeds_and_test_images": None}
            if with_seeds:
                siv_s = ratio_interval(num_s, den_s, level)
                share["interval_seeds_and_test_images"] = siv_s
                share["unbounded_seeds_and_test_images"] = [bool(np.isinf(x)) for x in siv_s]
            entry["share"] = share
        out[k] = entry
    return out


def mean_paired_difference(pairs: Sequence[tuple[dict, dict]], label_space: LabelSpace, groups: Sequence[str], *,
                           threshold: float = 0.5, n_resamples: int = 1000, seed: int = 0,
                           level: float = 0.95) -> dict:
    """`pairs`: (A, B) prediction dicts from medlt.report.paired.aligned_predictions (same images,
    same order, same true labels in every pair), one per seed pair. Returns {"headline"|group:
    {"difference", "interval", "significant", "interval_seeds_and_test_images",
    "significant_seeds_and_test_images", "per_pair"} or None}, plus n_pairs and the bootstrap
    settings (see the module docstring for the two intervals)."""
    key, t, strata = _setup(pairs, label_space)

    def diffs(w):
        return _per_pair_differences(pairs, w, t, key, label_space, groups, threshold)

    res = resampled(strata, n_resamples, seed, diffs)
    point = diffs(np.ones((1, len(strata))))
    with_seeds = len(pairs) > 1
    counts = seed_pair_counts(len(pairs), n_resamples, seed) if with_seeds else None
    out: dict = {"n_pairs": len(pairs), "n_resamples": n_resamples, "seed": seed, "level": level,
                 "resampling": TEST_IMAGES,
                 "resampling_seeds_and_test_images": SEEDS_AND_TEST_IMAGES if with_seeds else None}
    for k, v in point.items():
        per_pair = [float(x) for x in v[0]]
        p = float(_mean_over_pairs(v)[0])
        if np.isnan(p):
            out[k] = None
            continue
        iv = _interval(_mean_over_pairs(res[k]), level)
        iv_s = _interval(seed_resampled_mean(res[k], counts), level) if with_seeds else None
        out[k] = {"difference": p, "interval": iv, "significant": _significant(iv),
                  "interval_seeds_and_test_images": iv_s, "significant_seeds_and_test_images": _significant(iv_s),
                  "per_pair": [None if np.isnan(x) else x for x in per_pair]}
    return out
