"""frechet.py uses public APIs only (issue 18 item 8): no torchmetrics private `_compute_fid`, so a
torchmetrics release that renames or drops it cannot break FID; the singular-covariance route equals
scipy's sqrtm formula."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from medlt.metrics.frechet import _frechet_general, frechet_distance_from_moments

REPO = Path(__file__).resolve().parents[2]


def _scipy(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_both_covariances_singular_equal_scipy_sqrtm():
    g = torch.Generator().manual_seed(4)
    d = 12
    a = torch.randn(6, d, generator=g, dtype=torch.float64)  # rank 5 < D on both sides
    b = torch.randn(7, d, generator=g, dtype=torch.float64) * 0.8 + 0.2
    mu1, s1, mu2, s2 = a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T)
    ref = _scipy(*(t.numpy() for t in (mu1, s1, mu2, s2)))
    assert torch.linalg.cholesky_ex(s1)[1] != 0 and torch.linalg.cholesky_ex(s2)[1] != 0
    assert _frechet_general(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance_from_moments(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)  # falls back to it


def test_frechet_works_without_torchmetrics_private_functions():
    code = ("import sys; sys.modules['torchmetrics.image.fid'] = None\n"
            "import torch\n"
            "from medlt.metrics.frechet import frechet_distance_from_moments as f\n"
            "z = torch.zeros(3, dtype=torch.float64); s = torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))\n"
            "print(round(f(z, s, z + 1, s), 9))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.strip()) == pytest.approx(3.0)  # ‖Δμ‖² = 3, equal covariances
    assert "_compute_fid" not in (REPO / "medlt" / "metrics" / "frechet.py").read_text().split('"""', 2)[2]
