import numpy as np
import pytest
import scipy.linalg
import torch

from medlt import metrics as M


def _scipy_fid(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("seed,n1,n2,d", [(0, 200, 150, 8), (1, 500, 300, 32), (2, 60, 90, 16)])
def test_frechet_distance_equals_scipy_sqrtm(seed, n1, n2, d):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n1, d, generator=g)
    b = torch.randn(n2, d, generator=g) @ torch.randn(d, d, generator=g) * 0.5 + 0.3
    assert M.frechet_distance(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-6, abs=1e-8)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_running_moments_equal_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 12, generator=g) * 3 + 100  # large offset: numerically demanding
    rm = M.RunningMoments()
    for chunk in x.split(77):
        rm.update(chunk)
    assert rm.n == 1000
    assert torch.allclose(rm.mean, x.double().mean(0), atol=1e-9)
    assert torch.allclose(rm.covariance, torch.from_numpy(np.cov(x.double().numpy(), rowvar=False)), atol=1e-8)
    a, b = M.RunningMoments(), M.RunningMoments()
    a.update(x[:300])
    b.update(x[300:])
    a.merge(b)
    assert torch.allclose(a.covariance, rm.covariance, atol=1e-8)


def test_frechet_needs_two_vectors():
    with pytest.raises(ValueError):
        M.frechet_distance(torch.randn(1, 3), torch.randn(5, 3))


def _kid_reference(x, y):
    # direct unbiased MMD² with k(a,b) = (a.b/d + 1)^3, by definition
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()


def test_kid_matches_definition_on_full_sets():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 6, generator=g), torch.randn(40, 6, generator=g) + 0.5
    mean, std = M.kernel_inception_distance(x, y, subset_size=40, num_subsets=3)
    assert mean == pytest.approx(_kid_reference(x, y), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12)  # every subset is the full set


def test_kid_unbiased_same_distribution_near_zero_and_sometimes_negative():
    g = torch.Generator().manual_seed(2)
    vals = []
    for _ in range(40):
        x, y = torch.randn(30, 5, generator=g), torch.randn(30, 5, generator=g)
        vals.append(M.kernel_inception_distance(x, y, subset_size=30, num_subsets=1)[0])
    vals = np.array(vals)
    assert (vals < 0).any()  # an unbiased estimator of 0 must go negative
    assert abs(vals.mean()) < 3 * vals.std() / np.sqrt(len(vals)) + 1e-3
    # and a real shift is detected above the same-distribution spread
    shifted = M.kernel_inception_distance(torch.randn(30, 5, generator=g),
                                          torch.randn(30, 5, generator=g) + 1.0, subset_size=30)[0]
    assert shifted > vals.max()


def test_reservoir_is_bounded_and_uniform():
    res = M.FeatureReservoir(capacity=100, seed=0)
    x = torch.arange(10000, dtype=torch.float32).unsqueeze(1)
    for chunk in x.split(333):
        res.update(chunk)
    assert len(res) == 100 and res.seen == 10000
    kept = res.rows.flatten()
    assert kept.unique().numel() == 100
    assert 3000 < float(kept.mean()) < 7000  # not just the first rows


def test_class_feature_stats_stream_equals_batch():
    g = torch.Generator().manual_seed(4)
    names, groups = ["a", "b", "c"], ["head", "medium", "tail"]
    real = torch.randn(300, 4, generator=g)
    real_y = torch.randint(0, 3, (300,), generator=g)
    syn = torch.randn(240, 4, generator=g) + 0.2
    syn_y = torch.randint(0, 3, (240,), generator=g)
    st = M.ClassFeatureStats(names, groups, extractor_name="test-extractor", reservoir_capacity=10_000)
    for i in range(0, 300, 64):
        st.update("real", real[i:i + 64], real_y[i:i + 64])
    for i in range(0, 240, 50):
        st.update("synthetic", syn[i:i + 50], syn_y[i:i + 50])
    out = st.compute(kid_subset_size=1000, kid_num_subsets=2)
    assert out["extractor"] == "test-extractor"
    sc = out["scopes"]
    assert sc["overall"]["fid"] == pytest.approx(M.frechet_distance(real, syn), rel=1e-9)
    for c, name in enumerate(names):
        r, s = real[real_y == c], syn[syn_y == c]
        assert sc[f"class:{name}"]["fid"] == pytest.approx(M.frechet_distance(r, s), rel=1e-9)
        assert sc[f"group:{groups[c]}"]["n_real"] == len(r)
        # subset size >= both sides: one subset of size min(n_r, n_s), so KID is finite
        assert np.isfinite(sc[f"class:{name}"]["kid_mean"])
