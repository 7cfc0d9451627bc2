"""Fréchet distance between two sets of feature vectors, and streamed mean/covariance.

d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2}), computed in float64 with torchmetrics' FID core
(trace of the matrix square root via the eigenvalues of Σ₁Σ₂). "FID" is this distance on the
features of a named extractor; medlt never calls it FID without naming the extractor.
"""

from __future__ import annotations

import torch
from torchmetrics.image.fid import _compute_fid


class RunningMoments:
    """Running mean and covariance of (N, D) feature batches (Chan et al. parallel update, float64).

    Memory is O(D²) whatever the number of vectors fed in.
    """

    def __init__(self, dim: int | None = None):
        self.n = 0
        self.dim = dim
        self.mean: torch.Tensor | None = None
        self._m2: torch.Tensor | None = None  # sum of outer products of deviations

    def update(self, x: torch.Tensor) -> None:
        x = torch.as_tensor(x).detach().to(torch.float64).reshape(len(x), -1)
        if x.shape[0] == 0:
            return
        if self.dim is None:
            self.dim = x.shape[1]
        if x.shape[1] != self.dim:
            raise ValueError(f"feature dim {x.shape[1]} != {self.dim}")
        nb = x.shape[0]
        mb = x.mean(0)
        xc = x - mb
        m2b = xc.T @ xc
        if self.n == 0:
            self.n, self.mean, self._m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self._m2 = self._m2 + m2b + torch.outer(delta, delta) * (self.n * nb / n)
        self.mean = self.mean + delta * (nb / n)
        self.n = n

    def merge(self, other: RunningMoments) -> None:
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.dim, self.mean, self._m2 = other.n, other.dim, other.mean.clone(), other._m2.clone()
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self._m2 = self._m2 + other._m2 + torch.outer(delta, delta) * (self.n * other.n / n)
        self.mean = self.mean + delta * (other.n / n)
        self.n = n

    @property
    def covariance(self) -> torch.Tensor:
        """Unbiased sample covariance (divides by N − 1), like numpy.cov."""
        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 vectors, have {self.n}")
        return self._m2 / (self.n - 1)


def frechet_distance_from_moments(mu1, sigma1, mu2, sigma2) -> float:
    d = _compute_fid(mu1.to(torch.float64), sigma1.to(torch.float64),
                     mu2.to(torch.float64), sigma2.to(torch.float64))
    return float(d)


def frechet_distance_from_running(a: RunningMoments, b: RunningMoments) -> float:
    """NaN when either side has fewer than 2 vectors."""
    if a.n < 2 or b.n < 2:
        return float("nan")
    return frechet_distance_from_moments(a.mean, a.covariance, b.mean, b.covariance)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Standard Fréchet distance between the Gaussians fitted to two (N, D) feature sets."""
    a, b = RunningMoments(), RunningMoments()
    a.update(features_a)
    b.update(features_b)
    if a.n < 2 or b.n < 2:
        raise ValueError("frechet_distance needs at least 2 vectors on each side")
    return frechet_distance_from_running(a, b)
