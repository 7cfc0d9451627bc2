"""Class-balanced resampling for long-tailed training.

Each draw picks a class c with probability p_c ∝ n_c^q (q = 1: the natural distribution, q = 0.5:
square-root sampling, q = 0: uniform over classes), then an image uniformly among the images of
that class (multi-label: among the images that contain c). Classes without images get p = 0.
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
        if labels.ndim == 1 and num_classes is not None:
            self.members = [np.flatnonzero(labels == c) for c in range(num_classes)]
        else:
            self.members = class_members(labels)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n = len(labels)
        self.q = float(q)
        self.counts = np.array([len(m) for m in self.members])
        self.probabilities = class_probabilities(self.counts, self.q)
        self.num_samples = int(num_samples) if num_samples is not None else math.ceil(self.n / world_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draw(self) -> np.ndarray:
        """This rank's indices for the current epoch."""
        rng = np.random.default_rng(derive_seed("class-balanced", self.seed, self.epoch))
        total = self.num_samples * self.world_size
        classes = rng.choice(len(self.members), size=total, p=self.probabilities)
        out = np.empty(total, dtype=np.int64)
        for c, members in enumerate(self.members):
            where = np.flatnonzero(classes == c)
            if where.size:
                out[where] = members[rng.integers(0, len(members), size=where.size)]
        return out[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.draw().tolist())

    def __len__(self) -> int:
        return self.num_samples
