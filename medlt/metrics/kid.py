"""Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel
k(x, y) = (xᵀy / D + 1)³, averaged over random subsets (Bińkowski et al. 2018), using torchmetrics'
`poly_mmd`. Unbiased, so it is ~0 (and can be negative) for two samples of one distribution, which
matters for tail classes with a handful of real images.

Streaming: `FeatureReservoir` keeps a uniform random sample (reservoir sampling, seeded) of at
most `capacity` vectors, so memory is fixed however many vectors stream through; KID subsets are
drawn from the reservoirs. No N×N matrix beyond subset_size × subset_size.
"""

from __future__ import annotations

import math

import torch
from torchmetrics.image.kid import poly_mmd


class FeatureReservoir:
    """Uniform random sample of at most `capacity` rows of a stream (Vitter's algorithm R)."""

    def __init__(self, capacity: int = 2000, seed: int = 0):
        self.capacity = capacity
        self.seen = 0
        self.rows: torch.Tensor | None = None
        self._gen = torch.Generator().manual_seed(seed)

    def update(self, x: torch.Tensor) -> None:
        x = torch.as_tensor(x).detach().to(torch.float32).reshape(len(x), -1).cpu()
        if self.rows is None:
            self.rows = torch.empty(0, x.shape[1])
        free = self.capacity - self.rows.shape[0]
        if free > 0:
            take = x[:free]
            self.rows = torch.cat([self.rows, take])
            self.seen += take.shape[0]
            x = x[free:]
        if x.shape[0] == 0:
            return
        # row i of the remainder is stream element number seen+i (0-based): keep w.p. capacity/(seen+i+1)
        idx = self.seen + torch.arange(x.shape[0], dtype=torch.float64)
        j = torch.floor(torch.rand(x.shape[0], generator=self._gen, dtype=torch.float64) * (idx + 1)).long()
        keep = j < self.capacity
        for row, slot in zip(x[keep], j[keep].tolist(), strict=True):
            self.rows[slot] = row
        self.seen += x.shape[0]

    def __len__(self) -> int:
        return 0 if self.rows is None else self.rows.shape[0]


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, *, subset_size: int = 100,
                              num_subsets: int = 50, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of unbiased MMD² over `num_subsets` random subsets of size
    min(subset_size, n_real, n_fake). NaN when either side has fewer than 2 vectors."""
    real = torch.as_tensor(real, dtype=torch.float64)
    fake = torch.as_tensor(fake, dtype=torch.float64)
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        return float("nan"), float("nan")
    gen = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(num_subsets):
        r = real[torch.randperm(real.shape[0], generator=gen)[:m]]
        f = fake[torch.randperm(fake.shape[0], generator=gen)[:m]]
        vals.append(float(poly_mmd(r, f)))
    t = torch.tensor(vals, dtype=torch.float64)
    std = float(t.std()) if len(vals) > 1 else 0.0
    return float(t.mean()), (std if not math.isnan(std) else 0.0)
