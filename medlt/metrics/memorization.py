"""Memorization per synthetic image by the nearest-neighbour distance ratio:

    ratio(s) = d(s, r*) / d(r*, nearest other real training image)

where r* is the real training image nearest to the synthetic image s (feature space, Euclidean).
The denominator is the local spacing of the real data around r*, so the test adapts to density:
a jittered copy of a sparse tail image has a small ratio even when its absolute distance is
larger than typical head-class distances (which fooled the old global-percentile threshold).
s is flagged as a near-copy when ratio ≤ `ratio_threshold` (default 0.5: s is at most half as far
from r* as r*'s own nearest real neighbour).

Exact duplicates: two vectors closer than `identical_tolerance` (1e-5 × the RMS norm of the real
features) count as identical. The denominator is the distance to the nearest *non-identical*
other real image (a duplicated training image would otherwise have spacing 0 and make every copy
of it unflaggable); d(s, r*) within the tolerance is an exact copy, ratio 0, always flagged. When
r* has no non-identical neighbour the ratio is undefined (None) and s is flagged only if it is an
exact copy.

`MemorizationAccumulator` holds the real training features (fixed size) and is fed synthetic
features in chunks; it keeps counts per class and group, a fixed ratio histogram and the `top_k`
smallest-ratio pairs, plus one compact per-image row (nearest real index, two distances, ratio,
flags: about 30 bytes and the id per image), which `write_per_image_csv` writes out so that a user
can act on every flagged image (`medlt evaluate` writes it as memorization/extractor<j>_per_image.csv).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np
import torch

from medlt.errors import DataError
from medlt.metrics.nearest import nearest_neighbours
from medlt.utils.atomic import atomic_write_text

HIST_EDGES = [round(0.05 * i, 2) for i in range(41)]  # 0 .. 2 in steps of 0.05, then one overflow bin
#: columns of the per-image CSV (after synthetic_id and, when known, synthetic_image)
PER_IMAGE_COLUMNS = ("classes", "nearest_real_id", "distance_synthetic_real", "distance_real_nearest_other_real",
                     "ratio", "ratio_threshold", "flagged", "exact_copy")


def real_reference_subset(n_real: int, cap: int | None, seed: int) -> tuple[list[int] | None, str]:
    """The real reference of FID/KID/memorization (evaluate.max_real_reference): (sorted indices of
    a seeded uniform subset of `cap` of the `n_real` training images, or None for all of them; a
    description). `medlt evaluate` and `medlt synth --drop-near-copies` use the same subset."""
    if cap is None or n_real <= cap:
        return None, "real training split"
    g = torch.Generator().manual_seed(int(seed))
    return (sorted(torch.randperm(n_real, generator=g)[:cap].tolist()),
            f"seeded uniform subset of {cap} of the {n_real} real training images")


def _classes(lab: torch.Tensor) -> list[int]:
    return [int(lab)] if lab.ndim == 0 else [int(c) for c in torch.nonzero(lab > 0.5).flatten()]


class MemorizationAccumulator:
    def __init__(self, real_features: torch.Tensor, real_ids: Sequence[str], class_names: Sequence[str],
                 groups: Sequence[str] | None = None, *, ratio_threshold: float = 0.5, top_k: int = 8,
                 chunk: int = 1024, identical_rel_tol: float = 1e-5):
        self.real = torch.as_tensor(real_features, dtype=torch.float32).reshape(len(real_features), -1)
        if self.real.shape[0] < 2:
            raise DataError(f"memorization needs at least 2 real training images, got {self.real.shape[0]}")
        self.real_ids = list(real_ids)
        self.class_names = list(class_names)
        self.groups = list(groups) if groups is not None else [None] * len(self.class_names)
        self.threshold = float(ratio_threshold)
        self.chunk, self.top_k = chunk, top_k
        rms = float(self.real.double().pow(2).sum(1).mean().sqrt())
        self.tol = identical_rel_tol * max(rms, 1e-12)
        d_any, _ = nearest_neighbours(self.real, self.real, chunk=chunk, exclude_self=True)
        self.n_real_duplicates = int((d_any <= self.tol).sum())
        self.spacing, _ = nearest_neighbours(self.real, self.real, chunk=chunk, exclude_self=True,
                                             min_distance=self.tol)  # inf: no non-identical neighbour
        k = len(self.class_names)
        self.total, self.flagged, self.exact = (np.zeros(k, np.int64) for _ in range(3))
        self.min_ratio = np.full(k, np.inf)
        gnames = sorted({g for g in self.groups if g is not None})
        self.group_counts = {g: np.zeros(3, np.int64) for g in gnames}  # total, flagged, exact
        self.all_counts = np.zeros(3, np.int64)
        self.undefined = 0
        self.hist = np.zeros(len(HIST_EDGES), np.int64)  # last bin: ratio >= 2
        self._rows: list[tuple] = []  # per update: (ids, classes, index, distance, spacing, ratio, flagged, exact)
        self._heap: list[tuple] = []  # (-ratio, -tiebreak, record) - keeps the top_k smallest ratios
        self._count = 0

    def ratios(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per synthetic row: nearest real index, d(s, r*), d(r*, nn), ratio (nan = undefined), flagged, exact."""
        d, idx = nearest_neighbours(features, self.real, chunk=self.chunk)
        spacing = self.spacing[idx]
        exact = d <= self.tol
        ratio = torch.where(torch.isinf(spacing), torch.full_like(d, float("nan")), d / spacing)
        ratio = torch.where(exact, torch.zeros_like(d), ratio)
        flagged = exact | (ratio <= self.threshold)
        return {"index": idx, "distance": d, "spacing": spacing, "ratio": ratio, "flagged": flagged, "exact": exact}

    def update(self, features: torch.Tensor, labels: torch.Tensor, ids: Sequence[str]) -> None:
        r = self.ratios(features)
        labels = torch.as_tensor(labels)
        self._rows.append(([str(i) for i in ids], ["|".join(self.class_names[c] for c in _classes(lab)) for lab in labels],
                           *(r[k].numpy().copy() for k in ("index", "distance", "spacing", "ratio", "flagged", "exact"))))
        for i in range(len(ids)):
            f, e, q = bool(r["flagged"][i]), bool(r["exact"][i]), float(r["ratio"][i])
            cls = _classes(labels[i])
            for c in cls:
                self.total[c] += 1
                self.flagged[c] += f
                self.exact[c] += e
                if not math.isnan(q):
                    self.min_ratio[c] = min(self.min_ratio[c], q)
            for g in {self.groups[c] for c in cls if self.groups[c] is not None}:
                self.group_counts[g] += (1, f, e)
            self.all_counts += (1, f, e)
            if math.isnan(q):
                self.undefined += 1
            else:
                self.hist[min(int(q / 0.05), len(HIST_EDGES) - 1)] += 1
            key = (-(q if not math.isnan(q) else math.inf), -self._count)
            self._count += 1
            full = len(self._heap) >= self.top_k
            if self.top_k == 0 or (full and key <= self._heap[0][:2]):
                continue
            rec = {"synthetic_id": str(ids[i]), "real_id": self.real_ids[int(r["index"][i])],
                   "classes": [self.class_names[c] for c in cls], "ratio": None if math.isnan(q) else q,
                   "distance_synthetic_real": float(r["distance"][i]),
                   "distance_real_nearest_other_real": float(r["spacing"][i]), "flagged": f, "exact_copy": e}
            (heapq.heapreplace if full else heapq.heappush)(self._heap, (*key, rec))

    @staticmethod
    def _rate(counts) -> dict:
        t, f, e = (int(v) for v in counts)
        return {"n_synthetic": t, "n_flagged": f, "flagged_rate": (f / t) if t else None, "n_exact_copies": e}

    def state_nbytes(self) -> int:
        rows = sum(sum(a.nbytes for a in row[2:]) for row in self._rows)
        return (self.real.nelement() * self.real.element_size() + self.spacing.nelement() * self.spacing.element_size()
                + self.total.nbytes * 4 + self.hist.nbytes + rows)

    def per_image_frame(self):
        """One row per synthetic image fed so far, in the order fed: synthetic_id, then
        PER_IMAGE_COLUMNS (classes '|'-joined; ratio empty when undefined; flagged / exact_copy 0/1)."""
        import pandas as pd

        cols = ["synthetic_id", *PER_IMAGE_COLUMNS]
        if not self._rows:
            return pd.DataFrame(columns=cols)
        ids = [v for row in self._rows for v in row[0]]
        classes = [v for row in self._rows for v in row[1]]
        idx, dist, spacing, ratio, flagged, exact = (np.concatenate([row[k] for row in self._rows]) for k in range(2, 8))
        return pd.DataFrame({
            "synthetic_id": ids, "classes": classes, "nearest_real_id": [self.real_ids[int(i)] for i in idx],
            "distance_synthetic_real": dist.astype(float), "distance_real_nearest_other_real": spacing.astype(float),
            "ratio": ratio.astype(float), "ratio_threshold": self.threshold,
            "flagged": flagged.astype(int), "exact_copy": exact.astype(int)}, columns=cols)

    def write_per_image_csv(self, path, images: dict[str, str] | None = None,
                            real_images: dict[str, str] | None = None):
        """Write `per_image_frame()` atomically to `path`; `images` / `real_images` (id -> file)
        add a synthetic_image column after the id / a nearest_real_image column after the real id.
        Returns the path."""
        import io

        df = self.per_image_frame()
        if images is not None:
            df.insert(1, "synthetic_image", [images.get(i, "") for i in df["synthetic_id"]])
        if real_images is not None:
            df.insert(df.columns.get_loc("nearest_real_id") + 1, "nearest_real_image",
                      [real_images.get(i, "") for i in df["nearest_real_id"]])
        buf = io.StringIO()
        df.to_csv(buf, index=False, lineterminator="\n")
        return atomic_write_text(path, buf.getvalue())

    def compute(self) -> dict:
        per_class = {}
        for c, name in enumerate(self.class_names):
            row = {"group": self.groups[c], **self._rate((self.total[c], self.flagged[c], self.exact[c]))}
            row["min_ratio"] = float(self.min_ratio[c]) if np.isfinite(self.min_ratio[c]) else None
            per_class[name] = row
        pairs = [rec for *_, rec in sorted(self._heap, key=lambda it: (-it[0], -it[1]))]
        return {
            "definition": "ratio = d(s, r*) / d(r*, nearest non-identical other real training image), r* = the "
                          "real training image nearest to synthetic image s (feature space, Euclidean); flagged "
                          f"when ratio <= {self.threshold:g} or s is an exact copy (distance <= tolerance)",
            "ratio_threshold": self.threshold,
            "identical_tolerance": self.tol,
            "n_real": int(self.real.shape[0]),
            "n_real_with_exact_duplicate": self.n_real_duplicates,
            "n_synthetic_ratio_undefined": int(self.undefined),
            "overall": self._rate(self.all_counts),
            "per_group": {g: self._rate(v) for g, v in self.group_counts.items()},
            "per_class": per_class,
            "ratio_histogram": {"bin_edges": HIST_EDGES + [None], "counts": self.hist.tolist(),
                                "note": "bins of width 0.05 from 0; the last bin counts ratios >= 2"},
            "closest_pairs": pairs,
        }
