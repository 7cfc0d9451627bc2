"""Memorization (docs/evaluation.md): a synthetic image is a *near-copy* when its nearest real training
image in feature space is closer than the p-th percentile (default 5th) of the real-to-real
nearest-neighbour distances (each real image against the other real images, itself excluded).

`MemorizationAccumulator` is built once from the real training features (fixed size) and fed
synthetic features in chunks; it keeps per-class counts and the `top_k` closest pairs only, so
memory does not grow with the number of synthetic images.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import torch

from medlt.errors import DataError
from medlt.metrics.nearest import nearest_neighbours


def real_nn_threshold(real_features: torch.Tensor, percentile: float = 5.0, *, chunk: int = 1024) -> float:
    d, _ = nearest_neighbours(real_features, real_features, chunk=chunk, exclude_self=True)
    return float(np.percentile(d.numpy(), percentile))


class MemorizationAccumulator:
    def __init__(self, real_features: torch.Tensor, real_ids: Sequence[str], class_names: Sequence[str],
                 *, percentile: float = 5.0, top_k: int = 8, chunk: int = 1024):
        self.real = torch.as_tensor(real_features, dtype=torch.float32).reshape(len(real_features), -1)
        if self.real.shape[0] < 2:
            raise DataError(f"memorization needs at least 2 real training images, got {self.real.shape[0]}")
        self.real_ids = list(real_ids)
        self.class_names = list(class_names)
        self.percentile = percentile
        self.chunk = chunk
        self.threshold = real_nn_threshold(self.real, percentile, chunk=chunk)
        self.top_k = top_k
        self.flagged = np.zeros(len(self.class_names), dtype=np.int64)
        self.total = np.zeros(len(self.class_names), dtype=np.int64)
        self.flagged_all = 0
        self.total_all = 0
        self._heap: list[tuple[float, int, str, str]] = []  # (-distance, tiebreak, syn id, real id)
        self._count = 0

    def update(self, features: torch.Tensor, labels: torch.Tensor, ids: Sequence[str]) -> None:
        d, idx = nearest_neighbours(features, self.real, chunk=self.chunk)
        labels = torch.as_tensor(labels)
        near = (d < self.threshold).numpy()
        for i in range(len(ids)):
            lab = labels[i]
            classes = [int(lab)] if lab.ndim == 0 else [int(c) for c in torch.nonzero(lab > 0.5).flatten()]
            for c in classes:
                self.total[c] += 1
                self.flagged[c] += int(near[i])
            self.total_all += 1
            self.flagged_all += int(near[i])
            item = (-float(d[i]), self._count, str(ids[i]), self.real_ids[int(idx[i])])
            self._count += 1
            if len(self._heap) < self.top_k:
                heapq.heappush(self._heap, item)
            elif item[0] > self._heap[0][0]:
                heapq.heapreplace(self._heap, item)

    def compute(self) -> dict:
        share = [float(f / t) if t else None for f, t in zip(self.flagged, self.total, strict=True)]
        pairs = sorted(self._heap, key=lambda it: -it[0])
        return {
            "definition": f"Share of synthetic images whose nearest real training image (feature space, "
                          f"Euclidean) is closer than the {self.percentile:g}th percentile of "
                          f"real-to-real nearest distances (self excluded)",
            "threshold_distance": self.threshold,
            "near_copy_share_overall": (self.flagged_all / self.total_all) if self.total_all else None,
            "near_copies_overall": int(self.flagged_all),
            "per_class_near_copy_share": dict(zip(self.class_names, share, strict=True)),
            "per_class_near_copies": dict(zip(self.class_names, self.flagged.tolist(), strict=True)),
            "per_class_synthetic": dict(zip(self.class_names, self.total.tolist(), strict=True)),
            "closest_pairs": [{"synthetic_id": s, "real_id": r, "distance": -nd,
                               "near_copy": bool(-nd < self.threshold)} for nd, _, s, r in pairs],
        }
