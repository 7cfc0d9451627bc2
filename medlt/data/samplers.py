"""Class-balanced resampling for long-tailed training.

Strata: single-label, the K classes; multi-label, the K classes plus a "no positive label" stratum
(all-zero rows, e.g. normal scans), so every row belongs to at least one stratum. n_s = number of
rows in stratum s. Each row i splits a unit mass equally among its strata S_i, and a stratum's rows
are weighted by n_s^(q−1):

    P(row i) ∝ (1 / |S_i|) · Σ_{s ∈ S_i} n_s^(q − 1)

Single-label this is: pick class c with probability ∝ n_c^q, then an image of c uniformly
(q = 1: the natural distribution, q = 0.5: square-root sampling, q = 0: uniform over classes).
Multi-label, q = 1 is exactly the natural distribution (every row equally likely, all-zero rows
included) and q = 0 is uniform over strata when rows have at most one positive label; a row with
several positives spreads its mass over them. Empty strata get no draws.

Kept over torch's WeightedRandomSampler (the same distribution for single-label rows): it has no
rank sharding and no set_epoch, so under DDP every rank would draw its own, overlapping sequence,
and its draws follow a generator's running state rather than (seed, epoch), so a resumed run would
not redraw an epoch's indices; here all ranks draw one global sequence seeded by (seed, epoch) and
each keeps every world_size-th index.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from medlt.utils.seeding import derive_seed


def class_members(labels: np.ndarray) -> list[np.ndarray]:
    """Per class, the indices of the samples that carry it. labels: (N,) int or (N, K) 0/1."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        k = int(labels.max()) + 1 if labels.size else 0
        return [np.flatnonzero(labels == c) for c in range(k)]
    return [np.flatnonzero(labels[:, c] > 0) for c in range(labels.shape[1])]


def class_probabilities(counts, q: float) -> np.ndarray:
    """p_c ∝ n_c^q over classes with n_c > 0."""
    n = np.asarray(counts, dtype=np.float64)
    w = np.where(n > 0, np.power(np.maximum(n, 1.0), q), 0.0)
    if w.sum() <= 0:
        raise ValueError("no class has any sample")
    return w / w.sum()


def strata_matrix(labels, num_classes: int | None = None) -> np.ndarray:
    """(N, S) 0/1 membership: single-label one-hot over K classes; multi-label the K classes plus a
    last "no positive label" column (1 for all-zero rows)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        k = num_classes if num_classes is not None else (int(labels.max()) + 1 if labels.size else 0)
        m = np.zeros((labels.size, k), dtype=np.float64)
        m[np.arange(labels.size), labels.astype(np.int64)] = 1.0
        return m
    pos = (labels > 0).astype(np.float64)
    return np.concatenate([pos, (pos.sum(1, keepdims=True) == 0).astype(np.float64)], axis=1)


def row_probabilities(labels, q: float, num_classes: int | None = None) -> np.ndarray:
    """P(row i) ∝ (1/|S_i|) Σ_{s∈S_i} n_s^(q−1) (module docstring); sums to 1."""
    m = strata_matrix(labels, num_classes)
    if m.shape[0] == 0:
        raise ValueError("no samples to draw from")
    n = m.sum(0)
    scale = np.where(n > 0, np.power(np.maximum(n, 1.0), float(q) - 1.0), 0.0)
    w = (m @ scale) / m.sum(1)
    return w / w.sum()


class ClassBalancedSampler(Sampler[int]):
    """Yields `num_samples` indices per epoch for this rank.

    All ranks draw the same global sequence of num_samples * world_size indices (seeded by
    derive_seed(seed, epoch)) and each keeps every world_size-th one starting at its rank, so ranks
    see disjoint draws. Call set_epoch(e) each epoch for fresh draws.

    labels: (N,) int64 class indices (single-label) or (N, K) 0/1 multi-hot (multi-label).
    num_samples: per rank; default ceil(N / world_size).
    """

    def __init__(self, labels, q: float = 0.5, num_samples: int | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, num_classes: int | None = None):
        labels = np.asarray(labels)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n = len(labels)
        self.q = float(q)
        self.row_probabilities = row_probabilities(labels, self.q, num_classes)
        strata = strata_matrix(labels, num_classes)
        #: rows per stratum (multi-label: K classes, then the "no positive label" stratum)
        self.counts = strata.sum(0).astype(np.int64)
        #: probability that a draw is attributed to each stratum (a row's mass split over its strata)
        self.probabilities = (strata / strata.sum(1, keepdims=True)).T @ self.row_probabilities
        self.num_samples = int(num_samples) if num_samples is not None else math.ceil(self.n / world_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draw(self) -> np.ndarray:
        """This rank's indices for the current epoch."""
        rng = np.random.default_rng(derive_seed("class-balanced", self.seed, self.epoch))
        total = self.num_samples * self.world_size
        out = rng.choice(self.n, size=total, p=self.row_probabilities).astype(np.int64)
        return out[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.draw().tolist())

    def __len__(self) -> int:
        return self.num_samples
