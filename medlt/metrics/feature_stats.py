"""FID and KID per class, per head/medium/tail group and overall, from streamed features.

`ClassFeatureStats` keeps, for the real and the synthetic side and for every scope
("overall", "group:head", ..., "class:<name>"), a `RunningMoments` (FID) and a `FeatureReservoir`
(KID). Memory is O(scopes × (D² + capacity × D)), independent of the number of images.
Multi-label: an image counts for every class it carries (and each group of those classes, once).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medlt.metrics.frechet import RunningMoments, frechet_distance_from_running
from medlt.metrics.kid import FeatureReservoir, kernel_inception_distance
from medlt.utils.seeding import derive_seed

SIDES = ("real", "synthetic")


class ClassFeatureStats:
    def __init__(self, class_names: Sequence[str], groups: Sequence[str], *, extractor_name: str,
                 reservoir_capacity: int = 1000, seed: int = 0):
        self.class_names = list(class_names)
        self.groups = list(groups)
        self.extractor_name = extractor_name
        self.capacity = reservoir_capacity
        self.seed = seed
        self._moments: dict[tuple[str, str], RunningMoments] = {}
        self._reservoirs: dict[tuple[str, str], FeatureReservoir] = {}

    def _scopes_of(self, label: torch.Tensor) -> list[str]:
        if label.ndim == 0:
            classes = [int(label)]
        else:
            classes = [int(i) for i in torch.nonzero(label > 0.5).flatten()]
        scopes = ["overall"]
        scopes += sorted({f"group:{self.groups[c]}" for c in classes})
        scopes += [f"class:{self.class_names[c]}" for c in classes]
        return scopes

    def update(self, side: str, features: torch.Tensor, labels: torch.Tensor) -> None:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}")
        features = torch.as_tensor(features).detach().reshape(len(features), -1).cpu()
        labels = torch.as_tensor(labels).cpu()
        by_scope: dict[str, list[int]] = {}
        for i in range(features.shape[0]):
            for s in self._scopes_of(labels[i]):
                by_scope.setdefault(s, []).append(i)
        for scope, idx in by_scope.items():
            key = (side, scope)
            if key not in self._moments:
                self._moments[key] = RunningMoments()
                self._reservoirs[key] = FeatureReservoir(self.capacity, derive_seed(self.seed, *key))
            x = features[idx]
            self._moments[key].update(x)
            self._reservoirs[key].update(x)

    def scopes(self) -> list[str]:
        order = ["overall"] + [f"group:{g}" for g in ("head", "medium", "tail")] + \
                [f"class:{c}" for c in self.class_names]
        present = {s for (_, s) in self._moments}
        return [s for s in order if s in present]

    def compute(self, *, kid_subset_size: int = 100, kid_num_subsets: int = 50) -> dict:
        """{"extractor": name, "scopes": {scope: {fid, kid_mean, kid_std, n_real, n_synthetic}}}."""
        out = {}
        for scope in self.scopes():
            r, s = self._moments.get(("real", scope)), self._moments.get(("synthetic", scope))
            row = {"n_real": r.n if r else 0, "n_synthetic": s.n if s else 0,
                   "fid": float("nan"), "kid_mean": float("nan"), "kid_std": float("nan")}
            if r and s:
                row["fid"] = frechet_distance_from_running(r, s)
                km, ks = kernel_inception_distance(
                    self._reservoirs[("real", scope)].rows, self._reservoirs[("synthetic", scope)].rows,
                    subset_size=kid_subset_size, num_subsets=kid_num_subsets,
                    seed=derive_seed(self.seed, "kid", scope))
                row["kid_mean"], row["kid_std"] = km, ks
            out[scope] = row
        return {"extractor": self.extractor_name, "scopes": out}
