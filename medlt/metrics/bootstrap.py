"""Bootstrap confidence intervals for the classification metrics (pure numpy, vectorised).

Resampling: stratified by class over the test images. Each stratum (single-label: the true class;
multi-label: the test set's rarest positive class of the image, or "no positive label") is
resampled with replacement to its own size, so every class keeps its number of test images (the
balanced test splits are stratified by design). A resample is a row of image multiplicities
W[b, i] (how often image i was drawn in resample b), so every metric is a weighted count and B
resamples cost a few matrix products. Intervals are percentile intervals: the (1−level)/2 and
(1+level)/2 quantiles of the B resampled values (level 0.95 by default), NaN-aware.

Resamples are processed in memory-bounded chunks (CHUNK_CELLS) drawn from one seeded generator,
so a 20,000-image long-tailed test split costs the same memory as a small one.
The same W applied to two runs' predictions on the same images gives the paired bootstrap of their
difference (`paired_difference`). Seed noise (medlt.bench.paired_mean): a hierarchical bootstrap
draws the seed pairs with replacement (`seed_pair_counts`, a stream of its own) and then the test
images as above, and averages the drawn pairs' values (`seed_resampled_mean`). A ratio of two
resampled means keeps every resample (`ratio_interval`: x/0 = ±inf, so its interval can be unbounded).

Per resample the metrics are those of `medlt.metrics.classification`, computed with weights:
- balanced accuracy = mean over classes with test images of recall_c = C_cc / n_c;
- macro-F1 = mean over classes seen in y_true or y_pred of 2·C_cc / (n_c + Σ_r C_rc) (sklearn's
  average="macro", zero_division=0);
- group mean recall = mean recall of the group's classes;
- multi-label: per class (TPR+TNR)/2 at the threshold, AUROC (Mann–Whitney with ties counted ½) and
  average precision (sklearn's step-wise definition), each averaged over the classes where it is
  defined in that resample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlt.data.labels import GROUPS

#: resamples are processed in chunks of at most this many (resample, image) cells (~32 MB of weights)
CHUNK_CELLS = 4_000_000


def stratified_weights(strata: np.ndarray, n_resamples: int, seed: int | np.random.Generator) -> np.ndarray:
    """(B, N) float64 multiplicities: each stratum's members resampled with replacement to its size."""
    strata = np.asarray(strata).ravel()
    n = strata.size
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    rows = np.arange(n_resamples, dtype=np.int64)[:, None] * n
    flat = []
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        flat.append((rows + members[rng.integers(0, members.size, size=(n_resamples, members.size))]).ravel())
    counts = np.bincount(np.concatenate(flat), minlength=n_resamples * n) if flat else np.zeros(0)
    return counts.reshape(n_resamples, n).astype(np.float64)


def resampled(strata, n_resamples: int, seed: int, fn) -> dict:
    """fn(W) -> dict of (b, ...) arrays (or dicts of them), over all resamples in memory-bounded chunks
    drawn from one seeded generator; the chunks' results are concatenated along axis 0."""
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK_CELLS // max(1, np.asarray(strata).size))
    parts = [fn(stratified_weights(strata, min(step, n_resamples - i), rng)) for i in range(0, n_resamples, step)]

    def cat(items):
        if isinstance(items[0], dict):
            return {k: cat([it[k] for it in items]) for k in items[0]}
        return np.concatenate(items, axis=0)

    return cat(parts)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> np.ndarray:
    """[..., 2] (low, high) percentile interval over axis 0 (NaNs ignored; all-NaN -> NaN)."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    out = np.full(v.shape[1:] + (2,), np.nan)
    ok = ~np.all(np.isnan(v), axis=0)
    if np.any(ok):
        q = np.nanquantile(v[:, ok], [lo, hi], axis=0)
        out[ok] = np.moveaxis(q, 0, -1)
    return out


def quantile_keeping_infinities(values, q: float) -> float:
    """The q-quantile (numpy's default linear interpolation) of 1-D `values` in which ±inf are values
    like any other: a quantile whose interpolation touches an infinite value is that infinity (numpy's
    own interpolation would give NaN there). NaNs are not allowed; an empty array gives NaN."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if np.any(np.isnan(v)):
        raise ValueError("quantile_keeping_infinities: NaN among the values")
    if v.size == 0:
        return float("nan")
    h = (v.size - 1) * float(q)
    lo, hi = int(np.floor(h)), int(np.ceil(h))
    g = h - lo
    if g == 0 or np.isinf(v[lo]):
        return float(v[lo])
    if np.isinf(v[hi]):
        return float(v[hi])
    return float(v[lo] + g * (v[hi] - v[lo]))


def ratio_interval(num, den, level: float = 0.95) -> list[float]:
    """Percentile interval [low, high] of the resampled ratios num/den (1-D, same resamples) in which
    no resample is dropped: x/0 is ±inf by the sign of x, and an undefined 0/0 (or a NaN) counts as
    −inf for the low end and +inf for the high end (it could be anything). An end at ±inf means the
    interval is unbounded on that side."""
    n, d = np.asarray(num, np.float64).ravel(), np.asarray(den, np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = n / d
    undefined = np.isnan(r)
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    return [quantile_keeping_infinities(np.where(undefined, -np.inf, r), lo_q),
            quantile_keeping_infinities(np.where(undefined, np.inf, r), hi_q)]


#: the stream of the seed-pair draws (`seed_pair_counts`), apart from the test-image draws of `resampled`
SEED_PAIR_STREAM = 1


def seed_pair_counts(n_pairs: int, n_resamples: int, seed: int) -> np.ndarray:
    """(B, n_pairs) multiplicities of the seed pairs (a generator seed and a classifier seed, or a
    classifier seed alone for a control) in each resample of a hierarchical bootstrap: n_pairs pairs
    drawn with replacement. Drawn from np.random.default_rng([seed, SEED_PAIR_STREAM]), a stream
    apart from the test-image resamples, so those stay the ones of the test-images-only interval."""
    rng = np.random.default_rng([int(seed), SEED_PAIR_STREAM])
    draws = rng.integers(0, n_pairs, size=(n_resamples, n_pairs))
    rows = np.arange(n_resamples, dtype=np.int64)[:, None] * n_pairs
    return np.bincount((rows + draws).ravel(), minlength=n_resamples * n_pairs).reshape(
        n_resamples, n_pairs).astype(np.float64)


def seed_resampled_mean(per_pair: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B,) hierarchical bootstrap means: per resample b, the mean over the drawn seed pairs
    (counts[b], from `seed_pair_counts`) of per_pair[b, i], the pair's value on test-image resample
    b. A pair whose value is NaN in a resample leaves that resample's mean; all NaN -> NaN."""
    v = np.asarray(per_pair, np.float64)
    c = np.where(np.isnan(v), 0.0, np.asarray(counts, np.float64))
    tot = c.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, np.nansum(c * np.nan_to_num(v), 1) / np.maximum(tot, 1e-300), np.nan)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    cnt = np.sum(~np.isnan(x), axis=axis)
    tot = np.nansum(x, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


# ------------------------------------------------------------------ single-label

def confusion_matrices(w: np.ndarray, y_true, y_pred, num_classes: int) -> np.ndarray:
    """(B, K, K) weighted confusion matrices (rows true, columns predicted)."""
    t, p = np.asarray(y_true, np.int64).ravel(), np.asarray(y_pred, np.int64).ravel()
    k = num_classes
    onehot = np.zeros((t.size, k * k), dtype=np.float64)
    onehot[np.arange(t.size), t * k + p] = 1.0
    return (w @ onehot).reshape(-1, k, k)


def single_label_metrics(conf: np.ndarray, groups: Sequence[str]) -> dict[str, np.ndarray]:
    """From (B, K, K) confusion matrices: balanced_accuracy (B,), macro_f1 (B,), per_class_recall
    (B, K) (NaN for classes without test images) and group_mean_recall {group: (B,)}."""
    tp = np.diagonal(conf, axis1=1, axis2=2)
    n_true = conf.sum(2)
    n_pred = conf.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(n_true > 0, tp / np.maximum(n_true, 1e-300), np.nan)
        seen = (n_true + n_pred) > 0
        f1 = np.where(seen, 2 * tp / np.maximum(n_true + n_pred, 1e-300), np.nan)
    g = np.asarray(list(groups))
    return {
        "balanced_accuracy": _nanmean(recall, 1),
        "macro_f1": _nanmean(f1, 1),
        "per_class_recall": recall,
        "group_mean_recall": {name: _nanmean(recall[:, g == name], 1) if np.any(g == name)
                              else np.full(len(recall), np.nan) for name in GROUPS},
    }


def _interval_dict(metrics: dict, level: float) -> dict:
    out = {}
    for key, v in metrics.items():
        if isinstance(v, dict):
            out[key] = {g: _pair(percentile_interval(a, level)) if not np.all(np.isnan(a)) else None
                        for g, a in v.items()}
        elif v.ndim == 2:
            out[key] = [_pair(iv) for iv in percentile_interval(v, level)]
        else:
            out[key] = _pair(percentile_interval(v, level))
    return out


def _pair(iv) -> list[float] | None:
    iv = np.asarray(iv, dtype=np.float64)
    return None if np.any(np.isnan(iv)) else [float(iv[0]), float(iv[1])]


def _about(n_resamples: int, seed: int, level: float, strata: str) -> dict:
    return {"method": f"percentile bootstrap, stratified by {strata}", "n_resamples": int(n_resamples),
            "seed": int(seed), "level": float(level)}


def single_label_bootstrap(y_true, y_pred, num_classes: int, groups: Sequence[str], *, n_resamples: int = 1000,
                           seed: int = 0, level: float = 0.95) -> dict:
    """Percentile intervals [low, high] for balanced_accuracy, macro_f1, group_mean_recall {group:
    [low, high] or None} and per_class_recall (one [low, high] or None per class)."""
    t = np.asarray(y_true, np.int64).ravel()
    m = resampled(t, n_resamples, seed, lambda w: single_label_metrics(confusion_matrices(w, t, y_pred, num_classes),
                                                                       groups))
    return {**_about(n_resamples, seed, level, "true class"), **_interval_dict(m, level)}


# ------------------------------------------------------------------ multi-label

def rarest_positive_strata(y_true) -> np.ndarray:
    """Per image: its positive class with the fewest test positives, or K for "no positive label"."""
    t = (np.asarray(y_true) > 0)
    k = t.shape[1]
    rarity = np.where(t, t.sum(0)[None, :], np.iinfo(np.int64).max)
    return np.where(t.any(1), np.argmin(rarity, axis=1), k)


def _weighted_auroc_ap(w: np.ndarray, pos: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) AUROC and AP of one class for every resample (ties: AUROC counts ½, AP groups them)."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    wp = np.add.reduceat(w[:, order] * pos[order], starts, axis=1)           # (B, G) positives per score
    wn = np.add.reduceat(w[:, order] * (1 - pos[order]), starts, axis=1)     # negatives per score
    tot_p, tot_n = wp.sum(1), wn.sum(1)
    below_n = np.cumsum(wn, axis=1) - wn
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((tot_p > 0) & (tot_n > 0), (wp * (below_n + 0.5 * wn)).sum(1) / (tot_p * tot_n), np.nan)
        # AP: thresholds from the highest score down; precision at each distinct score
        tp = np.cumsum(wp[:, ::-1], axis=1)
        fp = np.cumsum(wn[:, ::-1], axis=1)
        prec = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        ap = np.where(tot_p > 0, (wp[:, ::-1] * prec).sum(1) / tot_p, np.nan)
    return auc, ap


def multi_label_metrics(w: np.ndarray, y_true, y_score, groups: Sequence[str], threshold: float = 0.5) -> dict:
    """Per resample: mean_per_class_balanced_accuracy_tpr_tnr, macro_auroc, mean_average_precision (B,),
    group_mean_balanced_accuracy_tpr_tnr {group: (B,)} and per_class_balanced_accuracy_tpr_tnr (B, K)."""
    t = (np.asarray(y_true) > 0).astype(np.float64)
    s = np.asarray(y_score, np.float64)
    pred = (s >= threshold).astype(np.float64)
    n_pos, n_neg = w @ t, w @ (1 - t)
    tp, tn = w @ (t * pred), w @ ((1 - t) * (1 - pred))
    with np.errstate(invalid="ignore", divide="ignore"):
        bacc = np.where((n_pos > 0) & (n_neg > 0), (tp / np.maximum(n_pos, 1e-300)
                                                    + tn / np.maximum(n_neg, 1e-300)) / 2, np.nan)
    k = t.shape[1]
    auc = np.empty((w.shape[0], k))
    ap = np.empty((w.shape[0], k))
    for c in range(k):
        auc[:, c], ap[:, c] = _weighted_auroc_ap(w, t[:, c], s[:, c])
    g = np.asarray(list(groups))
    return {
        "mean_per_class_balanced_accuracy_tpr_tnr": _nanmean(bacc, 1),
        "macro_auroc": _nanmean(auc, 1),
        "mean_average_precision": _nanmean(ap, 1),
        "group_mean_balanced_accuracy_tpr_tnr": {name: _nanmean(bacc[:, g == name], 1) if np.any(g == name)
                                                 else np.full(w.shape[0], np.nan) for name in GROUPS},
        "per_class_balanced_accuracy_tpr_tnr": bacc,
    }


def multi_label_bootstrap(y_true, y_score, groups: Sequence[str], *, threshold: float = 0.5,
                          n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile intervals for mean_per_class_balanced_accuracy_tpr_tnr, macro_auroc,
    mean_average_precision, group_mean_balanced_accuracy_tpr_tnr and per class (TPR+TNR)/2."""
    m = resampled(rarest_positive_strata(y_true), n_resamples, seed,
                  lambda w: multi_label_metrics(w, y_true, y_score, groups, threshold))
    return {**_about(n_resamples, seed, level, "rarest positive class (or no positive label)"),
            **_interval_dict(m, level)}


# ------------------------------------------------------------------ paired difference

def paired_difference(y_true, pred_a, pred_b, groups: Sequence[str], *, num_classes: int | None = None,
                      multi_label: bool = False, threshold: float = 0.5, n_resamples: int = 1000,
                      seed: int = 0, level: float = 0.95) -> dict:
    """Run B minus run A on the same test images, resampled together (paired, stratified as above).

    Single-label: pred_* are (N,) predicted classes; multi-label: (N, K) scores. Returns
    {metric: {"a", "b", "difference", "interval": [low, high], "significant": bool}} for the headline
    metric and each group (and macro-F1 / macro AUROC, mAP); "significant" = the interval excludes 0.
    """
    if multi_label:
        strata = rarest_positive_strata(y_true)
        both = resampled(strata, n_resamples, seed, lambda w: {
            "a": multi_label_metrics(w, y_true, pred_a, groups, threshold),
            "b": multi_label_metrics(w, y_true, pred_b, groups, threshold)})
        ma, mb = both["a"], both["b"]
        one = np.ones((1, len(strata)))
        pa, pb = (multi_label_metrics(one, y_true, p, groups, threshold) for p in (pred_a, pred_b))
        keys = ("mean_per_class_balanced_accuracy_tpr_tnr", "macro_auroc", "mean_average_precision")
        gkey = "group_mean_balanced_accuracy_tpr_tnr"
    else:
        t = np.asarray(y_true, np.int64).ravel()
        both = resampled(t, n_resamples, seed, lambda w: {
            "a": single_label_metrics(confusion_matrices(w, t, pred_a, num_classes), groups),
            "b": single_label_metrics(confusion_matrices(w, t, pred_b, num_classes), groups)})
        ma, mb = both["a"], both["b"]
        one = np.ones((1, t.size))
        pa, pb = (single_label_metrics(confusion_matrices(one, t, p, num_classes), groups) for p in (pred_a, pred_b))
        keys = ("balanced_accuracy", "macro_f1")
        gkey = "group_mean_recall"

    def entry(a_point, b_point, a_res, b_res):
        if np.isnan(a_point) or np.isnan(b_point):
            return None
        iv = _pair(percentile_interval(b_res - a_res, level))
        return {"a": float(a_point), "b": float(b_point), "difference": float(b_point - a_point), "interval": iv,
                "significant": bool(iv is not None and (iv[0] > 0 or iv[1] < 0))}

    out = {**_about(n_resamples, seed, level, "true class" if not multi_label
                    else "rarest positive class (or no positive label)")}
    for k in keys:
        out[k] = entry(pa[k][0], pb[k][0], ma[k], mb[k])
    out[gkey] = {g: entry(pa[gkey][g][0], pb[gkey][g][0], ma[gkey][g], mb[gkey][g]) for g in GROUPS}
    return out
