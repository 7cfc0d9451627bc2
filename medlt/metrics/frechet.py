"""Fréchet distance between two sets of feature vectors, and streamed mean/covariance.

d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2}), computed in float64; the trace of the matrix
square root is the sum of the square roots of the eigenvalues of Σ₁Σ₂, taken from the symmetric
matrix LᵀΣ₂L (Σ₁ = LLᵀ), with the general eigenvalues of Σ₁Σ₂ (`torch.linalg.eigvals`, the
formula of torchmetrics' FID) as the fallback. "FID" is this distance on the features of a named
extractor; medlt never calls it FID without naming the extractor.

Why not torchmetrics' `FrechetInceptionDistance` itself: it holds one pair of moments per metric
object, while medlt needs per-class moments, their mixtures, bootstrap factors and low-rank
(factored) covariances; its formula is reproduced through public torch APIs only.
"""

from __future__ import annotations

import torch


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
    """Fréchet distance of two Gaussians (float64), by the symmetric route (`_frechet_symmetric`),
    or the general-eigenvalue formula (`_frechet_general`) when Σ₁ and Σ₂ are numerically singular."""
    return _frechet_symmetric(torch.as_tensor(mu1), torch.as_tensor(sigma1), torch.as_tensor(mu2),
                              torch.as_tensor(sigma2))


def _frechet_general(mu1, sigma1, mu2, sigma2) -> float:
    """Tr (Σ₁Σ₂)^{1/2} = Σ Re √λ over the (general, possibly complex) eigenvalues λ of Σ₁Σ₂: exact for
    singular PSD covariances, where a Cholesky factor does not exist."""
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(v).to(torch.float64) for v in (mu1, sigma1, mu2, sigma2))
    tr_sqrt = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt)


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


def mixture_moments(weights, means, covariances) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of the mixture Σ_c π_c N(μ_c, Σ_c) (weights normalised to sum 1):
    μ = Σ_c π_c μ_c and Σ = Σ_c π_c (Σ_c + μ_c μ_cᵀ) − μ μᵀ, computed in the equivalent, better
    conditioned form Σ_c π_c Σ_c + Σ_c π_c (μ_c − μ)(μ_c − μ)ᵀ (float64)."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.numel() == 0 or float(w.sum()) <= 0:
        raise ValueError("mixture_moments needs at least one positive weight")
    w = w / w.sum()
    mus = torch.stack([torch.as_tensor(m, dtype=torch.float64) for m in means])
    mu = (w[:, None] * mus).sum(0)
    sigma = torch.zeros(mus.shape[1], mus.shape[1], dtype=torch.float64)
    for wc, mc, sc in zip(w, mus, covariances, strict=True):
        dc = mc - mu
        sigma += wc * (torch.as_tensor(sc, dtype=torch.float64) + torch.outer(dc, dc))
    return mu, sigma


def weighted_factor(rows: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean μ and a factor A with AᵀA = the unbiased covariance of `rows` repeated `counts` times
    (frequency weights; Σ counts − 1 in the denominator). No D×D matrix is formed."""
    x = torch.as_tensor(rows, dtype=torch.float64)
    c = torch.as_tensor(counts, dtype=torch.float64)
    n = float(c.sum())
    if n < 2:
        raise ValueError("weighted_factor needs a total count of at least 2")
    mu = (c[:, None] * x).sum(0) / n
    return mu, (x - mu) * torch.sqrt(c / (n - 1))[:, None]


def mixture_factor(weights, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """`mixture_moments` for factored covariances: parts = [(μ_c, A_c)] with Σ_c = A_cᵀA_c; returns
    (μ, A) with AᵀA = Σ_c π_c Σ_c + Σ_c π_c (μ_c − μ)(μ_c − μ)ᵀ."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    w = w / w.sum()
    mu = sum(wc * m for wc, (m, _) in zip(w, parts, strict=True))
    rows = [torch.sqrt(wc) * a for wc, (_, a) in zip(w, parts, strict=True)]
    rows.append(torch.stack([torch.sqrt(wc) * (m - mu) for wc, (m, _) in zip(w, parts, strict=True)]))
    return mu, torch.cat(rows)


def frechet_distance_from_factors(mu1, a1: torch.Tensor, mu2, a2: torch.Tensor) -> float:
    """Fréchet distance with Σ₁ = A₁ᵀA₁ and Σ₂ = A₂ᵀA₂ (A: r × D). Tr (Σ₁Σ₂)^{1/2} equals the
    nuclear norm of A₁A₂ᵀ (the non-zero eigenvalues of Σ₁Σ₂ are those of (A₁A₂ᵀ)(A₁A₂ᵀ)ᵀ), so
    when both factors have at most D rows nothing D×D is decomposed; otherwise the covariances
    are formed and the standard formula is used."""
    a1, a2 = torch.as_tensor(a1, dtype=torch.float64), torch.as_tensor(a2, dtype=torch.float64)
    d = a1.shape[1]
    if a1.shape[0] > d or a2.shape[0] > d:
        return frechet_distance_from_moments(mu1, a1.T @ a1, mu2, a2.T @ a2)
    diff = torch.as_tensor(mu1, dtype=torch.float64) - torch.as_tensor(mu2, dtype=torch.float64)
    tr = float((a1 * a1).sum() + (a2 * a2).sum())
    nuc = float(torch.linalg.svdvals(a1 @ a2.T).sum())
    return float(diff @ diff) + tr - 2 * nuc


def _frechet_symmetric(mu1, sigma1, mu2, sigma2) -> float:
    """The same distance via a symmetric eigenproblem: with Σ₁ = LLᵀ (Cholesky), the eigenvalues of
    Σ₁Σ₂ are those of LᵀΣ₂L (symmetric PSD), so Tr (Σ₁Σ₂)^{1/2} = Σ sqrt(eigvalsh(LᵀΣ₂L)) — several
    times cheaper than the general eigenvalues of Σ₁Σ₂. Falls back to the general route when Σ₁ is
    both numerically singular (Σ₁ first, then Σ₂)."""
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    chol, info = torch.linalg.cholesky_ex(sigma1)
    other = sigma2
    if int(info) != 0:  # the distance is symmetric in the two sides: try Σ₂'s Cholesky
        chol, info = torch.linalg.cholesky_ex(sigma2)
        other = sigma1
        if int(info) != 0:
            return _frechet_general(mu1, sigma1, mu2, sigma2)
    ev = torch.linalg.eigvalsh(chol.T @ other @ chol).clamp_min(0)
    diff = mu1.to(torch.float64) - mu2.to(torch.float64)
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * ev.sqrt().sum())


def frechet_distance_moments_factor(mu1, sigma1, mu2, a2: torch.Tensor) -> float:
    """Fréchet distance with Σ₂ = A₂ᵀA₂ given by its factor (A₂: r × D, e.g. the centred rows of a
    small sample): the non-zero eigenvalues of Σ₁Σ₂ are those of the r × r symmetric PSD matrix
    A₂Σ₁A₂ᵀ, so nothing D × D is decomposed and Σ₁ may be singular."""
    a2 = torch.as_tensor(a2, dtype=torch.float64)
    sigma1 = torch.as_tensor(sigma1, dtype=torch.float64)
    if a2.shape[0] > a2.shape[1]:
        return frechet_distance_from_moments(mu1, sigma1, mu2, a2.T @ a2)
    ev = torch.linalg.eigvalsh(a2 @ sigma1 @ a2.T).clamp_min(0)
    diff = torch.as_tensor(mu1, dtype=torch.float64) - torch.as_tensor(mu2, dtype=torch.float64)
    return float(diff @ diff + sigma1.trace() + (a2 * a2).sum() - 2 * ev.sqrt().sum())
