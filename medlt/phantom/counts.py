"""Long-tailed class counts: n_c = n_max * r ** (c / (C - 1)) (docs/datasets.md).

`r` is the imbalance ratio n_min / n_max (0 < r <= 1; default 0.01, i.e. the head class has 100x
the tail's images). A value > 1 is read as n_max / n_min (so 100 and 0.01 mean the same). Class
c = 0 is the first class of the official order (the head: "No Finding" for the CXR datasets).
Counts are rounded and at least `minimum` (1), so every class appears in training.
"""

from __future__ import annotations

import numpy as np


def normalize_ratio(imbalance_ratio: float) -> float:
    """The ratio as n_min / n_max in (0, 1]."""
    r = float(imbalance_ratio)
    if not np.isfinite(r) or r <= 0:
        raise ValueError(f"imbalance ratio must be a positive number, got {imbalance_ratio}")
    return 1.0 / r if r > 1 else r


def long_tail_counts(n_max: float, num_classes: int, imbalance_ratio: float, *,
                     minimum: int = 1) -> list[int]:
    """[round(n_max * r ** (c / (C - 1))) for c in 0..C-1], each at least `minimum`."""
    if num_classes < 1:
        raise ValueError("num_classes must be >= 1")
    r = normalize_ratio(imbalance_ratio)
    if num_classes == 1:
        return [max(minimum, int(round(n_max)))]
    c = np.arange(num_classes)
    raw = float(n_max) * r ** (c / (num_classes - 1))
    return [max(minimum, int(np.floor(x + 0.5))) for x in raw]


def n_max_for_total(total: int, num_classes: int, imbalance_ratio: float) -> float:
    """n_max such that the unrounded counts sum to `total`."""
    r = normalize_ratio(imbalance_ratio)
    if num_classes == 1:
        return float(total)
    c = np.arange(num_classes)
    return float(total) / float(np.sum(r ** (c / (num_classes - 1))))
