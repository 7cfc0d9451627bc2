"""Class-matched FID and KID per class, per head/medium/tail group and overall, from streamed
features (one extractor).

Per class c and side (real / synthetic) the accumulator keeps the running moments of *all* images
of c (`RunningMoments`) and a seeded uniform sample of rows (`FeatureReservoir`): up to
`reservoir_capacity` real rows and exactly `fid_samples_per_class` synthetic rows (fewer only when
the class has fewer synthetic images). Memory is O(classes × (D² + capacity × D)), independent of
the number of images.

Definitions (docs/evaluation.md):
- per class: FID between all real images of c and the fixed-size synthetic sample of c (equal n
  for every class, so per-class values are comparable: FID's bias shrinks with n, Chong & Forsyth
  2020); KID over subsets of the stored rows. A class with fewer than `min_real_per_class` real
  (or `min_synthetic_per_class` synthetic) images gets no value, status "too_few_real_images"
  ("too_few_synthetic_images"), and enters no scope and no mean.
- scope (overall, group:<g>): the classes of the scope that have a value; weights π uniform over
  them, *the same on both sides*. FID between the mixtures μ = Σπ_c μ_c, Σ = Σπ_c(Σ_c + μ_cμ_cᵀ) − μμᵀ
  of the per-class moments (all images of each class); KID over subsets stratified by π. Also the
  plain mean of the entered classes' per-class values.
- "pooled": all images of each side pooled (each side's own class mix). Under a synthesis plan
  that fills the tail, the two mixes differ and pooled FID penalises even a perfect generator; kept
  only as a named diagnostic.
- intervals: FID ± 1.96 × SD of `bootstrap_replicates` seeded bootstrap replicates (each class
  side resampled with replacement from its stored rows, as many draws as the class has images;
  lower end clipped at 0); KID: 2.5th–97.5th percentile of the subset values.
Multi-label: an image contributes to the moments and rows of every class it carries; an image
with no positive label enters only "pooled" (counted in `n_without_positive_label`). Stored rows
keep the image's id (its position in its side's stream), so a scope's KID never pairs an image
with itself across two of its classes (medlt.metrics.kid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from medlt.metrics.frechet import (
    RunningMoments,
    frechet_distance_from_factors,
    frechet_distance_from_moments,
    frechet_distance_from_running,
    frechet_distance_moments_factor,
    mixture_factor,
    mixture_moments,
    weighted_factor,
)
from medlt.metrics.kid import FeatureReservoir, kid_subset_values, summarize_kid
from medlt.utils.seeding import derive_seed

SIDES = ("real", "synthetic")
GROUP_ORDER = ("head", "medium", "tail")
OK = "ok"
TOO_FEW_REAL = "too_few_real_images"
TOO_FEW_SYN = "too_few_synthetic_images"


def class_masks(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N,) class indices or (N, K) multi-hot -> (N, K) bool membership."""
    labels = torch.as_tensor(labels)
    if labels.ndim == 1:
        return torch.nn.functional.one_hot(labels.long(), num_classes).bool()
    return labels > 0.5


def normal_interval(point: float, reps: list[float], *, floor: float | None = None) -> list[float] | None:
    """point ± 1.96 × SD(replicates); None with fewer than 2 finite replicates."""
    r = torch.tensor([v for v in reps if math.isfinite(v)], dtype=torch.float64)
    if r.numel() < 2 or not math.isfinite(point):
        return None
    sd = float(r.std())
    lo, hi = point - 1.96 * sd, point + 1.96 * sd
    return [max(lo, floor) if floor is not None else lo, hi]


class ClassFeatureStats:
    def __init__(self, class_names: Sequence[str], groups: Sequence[str], *, extractor_name: str,
                 reservoir_capacity: int = 1000, fid_samples_per_class: int = 500,
                 min_real_per_class: int = 10, min_synthetic_per_class: int = 10, seed: int = 0):
        self.class_names = list(class_names)
        self.groups = list(groups)
        self.extractor_name = extractor_name
        self.capacity = reservoir_capacity
        self.fixed_n = fid_samples_per_class
        self.min_real = max(2, min_real_per_class)
        self.min_syn = max(2, min_synthetic_per_class)
        self.seed = seed
        k = len(self.class_names)
        self._moments = {(s, c): RunningMoments() for s in SIDES for c in range(k)}
        self._rows = {(s, c): FeatureReservoir(self.capacity if s == "real" else self.fixed_n,
                                               derive_seed(seed, s, "class", c)) for s in SIDES for c in range(k)}
        self._pooled = {s: RunningMoments() for s in SIDES}
        self._pooled_rows = {s: FeatureReservoir(self.capacity, derive_seed(seed, s, "pooled")) for s in SIDES}
        self.n_without_label = {s: 0 for s in SIDES}
        self._n_images = {s: 0 for s in SIDES}  # image ids: position in the side's stream

    def update(self, side: str, features: torch.Tensor, labels: torch.Tensor) -> None:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}")
        x = torch.as_tensor(features).detach().reshape(len(features), -1).cpu()
        masks = class_masks(torch.as_tensor(labels).cpu(), len(self.class_names))
        ids = self._n_images[side] + torch.arange(x.shape[0])
        self._n_images[side] += x.shape[0]
        self._pooled[side].update(x)
        self._pooled_rows[side].update(x)
        self.n_without_label[side] += int((~masks.any(1)).sum())
        for c in torch.nonzero(masks.any(0)).flatten().tolist():
            xc = x[masks[:, c]]
            self._moments[(side, c)].update(xc)
            self._rows[(side, c)].update(xc, ids[masks[:, c]])

    def state_nbytes(self) -> int:
        """Bytes of every tensor held (moments and stored rows)."""
        total = 0
        for m in [*self._moments.values(), *self._pooled.values()]:
            if m.mean is not None:
                total += m.mean.nelement() * m.mean.element_size() + m._m2.nelement() * m._m2.element_size()
        for r in [*self._rows.values(), *self._pooled_rows.values()]:
            if r.rows is not None:
                total += r.rows.nelement() * r.rows.element_size() + r.ids.nelement() * r.ids.element_size()
        return total

    # -- per class ------------------------------------------------------------------------------
    def _status(self, c: int) -> str:
        if self._moments[("real", c)].n < self.min_real:
            return TOO_FEW_REAL
        if self._moments[("synthetic", c)].n < self.min_syn:
            return TOO_FEW_SYN
        return OK

    def _syn_fixed_factor(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self._rows[("synthetic", c)].rows
        return weighted_factor(rows, torch.ones(rows.shape[0]))

    def _boot_factor(self, side: str, c: int, n_draws: int, gen: torch.Generator):
        rows = self._rows[(side, c)].rows
        idx = torch.randint(0, rows.shape[0], (n_draws,), generator=gen)
        uniq, cnt = idx.unique(return_counts=True)
        return weighted_factor(rows[uniq], cnt)

    def _class_row(self, c: int, kid_subset_size: int, kid_num_subsets: int, reps: int) -> dict:
        r, s = self._moments[("real", c)], self._moments[("synthetic", c)]
        n_syn_used = len(self._rows[("synthetic", c)])
        row = {"group": self.groups[c], "status": self._status(c), "n_real": r.n, "n_synthetic": n_syn_used,
               "n_synthetic_available": s.n, "at_fixed_n": n_syn_used == self.fixed_n,
               "fid": None, "fid_ci95": None, "kid_mean": None, "kid_std": None, "kid_subset_interval95": None}
        if row["status"] != OK:
            return row
        mu_s, a_s = self._syn_fixed_factor(c)
        row["fid"] = frechet_distance_moments_factor(r.mean, r.covariance, mu_s, a_s)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "fid-bootstrap", "class", c))
        boots = []
        for _ in range(reps):
            m1, a1 = self._boot_factor("real", c, r.n, gen)
            m2, a2 = self._boot_factor("synthetic", c, n_syn_used, gen)
            boots.append(frechet_distance_from_factors(m1, a1, m2, a2))
        row["fid_ci95"] = normal_interval(row["fid"], boots, floor=0.0)
        vals = kid_subset_values([(1.0, self._rows[("real", c)].rows)], [(1.0, self._rows[("synthetic", c)].rows)],
                                 subset_size=kid_subset_size, num_subsets=kid_num_subsets,
                                 seed=derive_seed(self.seed, "kid", "class", c))
        row.update(summarize_kid(vals))
        return row

    # -- scopes ---------------------------------------------------------------------------------
    def _scope_row(self, members: list[int], per_class: dict, kid_subset_size: int, kid_num_subsets: int,
                   reps: int, name: str) -> dict:
        entered = [c for c in members if per_class[self.class_names[c]]["status"] == OK]
        row = {"classes": [self.class_names[c] for c in entered],
               "excluded": {self.class_names[c]: per_class[self.class_names[c]]["status"]
                            for c in members if c not in entered},
               "class_weights": "uniform over the entered classes (the same on both sides)",
               "n_real": sum(self._moments[("real", c)].n for c in entered),
               "n_synthetic": sum(self._moments[("synthetic", c)].n for c in entered),
               "fid": None, "fid_ci95": None, "kid_mean": None, "kid_std": None, "kid_subset_interval95": None,
               "mean_per_class_fid": None, "mean_per_class_kid": None}
        if not entered:
            return row
        w = [1.0 / len(entered)] * len(entered)
        sides = {}
        for side in SIDES:
            ms = [self._moments[(side, c)] for c in entered]
            sides[side] = mixture_moments(w, [m.mean for m in ms], [m.covariance for m in ms])
        row["fid"] = frechet_distance_from_moments(*sides["real"], *sides["synthetic"])
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "fid-bootstrap", name))
        boots = []
        for _ in range(reps):
            parts = {side: [self._boot_factor(side, c, self._moments[(side, c)].n, gen) for c in entered]
                     for side in SIDES}
            m1, a1 = mixture_factor(w, parts["real"])
            m2, a2 = mixture_factor(w, parts["synthetic"])
            boots.append(frechet_distance_from_factors(m1, a1, m2, a2))
        row["fid_ci95"] = normal_interval(row["fid"], boots, floor=0.0)
        parts = {side: [(wc, self._rows[(side, c)].rows, self._rows[(side, c)].ids)
                        for wc, c in zip(w, entered, strict=True)] for side in SIDES}
        vals = kid_subset_values(parts["real"], parts["synthetic"],
                                 subset_size=kid_subset_size, num_subsets=kid_num_subsets,
                                 seed=derive_seed(self.seed, "kid", name))
        row.update(summarize_kid(vals))
        fids = [per_class[self.class_names[c]]["fid"] for c in entered]
        kids = [per_class[self.class_names[c]]["kid_mean"] for c in entered]
        row["mean_per_class_fid"] = sum(fids) / len(fids)
        finite = [k for k in kids if k is not None and math.isfinite(k)]
        row["mean_per_class_kid"] = sum(finite) / len(finite) if finite else None
        return row

    def compute(self, *, kid_subset_size: int = 100, kid_num_subsets: int = 50,
                bootstrap_replicates: int = 20) -> dict:
        """The fid_kid block: {"extractor", "settings", "per_class", "scopes", "pooled"}
        (documented in docs/evaluation.md)."""
        per_class = {name: self._class_row(c, kid_subset_size, kid_num_subsets, bootstrap_replicates)
                     for c, name in enumerate(self.class_names)}
        scopes = {"overall": self._scope_row(list(range(len(self.class_names))), per_class, kid_subset_size,
                                             kid_num_subsets, bootstrap_replicates, "overall")}
        for g in GROUP_ORDER:
            members = [c for c, gc in enumerate(self.groups) if gc == g]
            if members:
                scopes[f"group:{g}"] = self._scope_row(members, per_class, kid_subset_size, kid_num_subsets,
                                                       bootstrap_replicates, f"group:{g}")
        pr, ps = self._pooled["real"], self._pooled["synthetic"]
        pooled = {"n_real": pr.n, "n_synthetic": ps.n, "fid": frechet_distance_from_running(pr, ps),
                  "kid_mean": None, "kid_std": None,
                  "note": "all images of each side pooled with that side's own class mix; not class-matched "
                          "(a perfect generator filling the tail scores > 0) - diagnostic only"}
        if len(self._pooled_rows["real"]) >= 2 and len(self._pooled_rows["synthetic"]) >= 2:
            s = summarize_kid(kid_subset_values([(1.0, self._pooled_rows["real"].rows)],
                                                [(1.0, self._pooled_rows["synthetic"].rows)],
                                                subset_size=kid_subset_size, num_subsets=kid_num_subsets,
                                                seed=derive_seed(self.seed, "kid", "pooled")))
            pooled["kid_mean"], pooled["kid_std"] = s["kid_mean"], s["kid_std"]
        return {
            "extractor": self.extractor_name,
            "settings": {"fid_samples_per_class": self.fixed_n, "min_real_per_class": self.min_real,
                         "min_synthetic_per_class": self.min_syn, "real_rows_stored_per_class": self.capacity,
                         "kid_subset_size": kid_subset_size, "kid_num_subsets": kid_num_subsets,
                         "bootstrap_replicates": bootstrap_replicates, "seed": self.seed,
                         "fid_ci95": "FID ± 1.96 × SD of bootstrap replicates (stored rows resampled per class "
                                     "and side), lower end clipped at 0",
                         "kid_subset_interval95": "2.5th-97.5th percentile of the KID subset values"},
            "n_without_positive_label": dict(self.n_without_label),
            "per_class": per_class, "scopes": scopes, "pooled": pooled,
        }
