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
    one = torch.ones(40, dtype=torch.float64)
    assert M.weighted_mmd2_unbiased(x, one, y, one) == pytest.approx(_kid_reference(x, y), rel=1e-9)
    # unequal sizes: the same U-statistic with m != n
    x2 = x[:25]
    d = 6
    k = lambda a, b: (a.double() @ b.double().T / d + 1) ** 3  # noqa: E731
    kxx, kyy = k(x2, x2), k(y, y)
    ref = ((kxx.sum() - kxx.trace()) / (25 * 24) + (kyy.sum() - kyy.trace()) / (40 * 39) - 2 * k(x2, y).mean())
    assert M.weighted_mmd2_unbiased(x2, one[:25], y, one) == pytest.approx(float(ref), rel=1e-9)
    # both sides smaller than the subset size: subsets are bootstrap resamples, so they differ
    mean, std = M.kernel_inception_distance(x, y, subset_size=100, num_subsets=20)
    assert std > 0 and abs(mean - _kid_reference(x, y)) < 3 * std


def test_bootstrap_weights_never_pair_a_row_with_itself():
    # a row drawn twice (count 2) must not contribute k(x, x): weights 2 on one row and 1 on
    # another give the plain cross-kernel value as the within-side mean
    from medlt.metrics.kid import _block_mean, polynomial_kernel

    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, generator=g, dtype=torch.float64)
    val = _block_mean(x, torch.tensor([2.0, 1.0], dtype=torch.float64), x, None, same=True)
    assert float(val) == pytest.approx(float(polynomial_kernel(x, x)[0, 1]), rel=1e-12)


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
    st = M.ClassFeatureStats(names, groups, extractor_name="test-extractor", reservoir_capacity=10_000,
                             fid_samples_per_class=10_000, min_real_per_class=2)
    for i in range(0, 300, 64):
        st.update("real", real[i:i + 64], real_y[i:i + 64])
    for i in range(0, 240, 50):
        st.update("synthetic", syn[i:i + 50], syn_y[i:i + 50])
    out = st.compute(kid_subset_size=1000, kid_num_subsets=2, bootstrap_replicates=5)
    assert out["extractor"] == "test-extractor"
    assert out["pooled"]["fid"] == pytest.approx(M.frechet_distance(real, syn), rel=1e-9)
    for c, name in enumerate(names):
        r, s = real[real_y == c], syn[syn_y == c]
        row = out["per_class"][name]
        assert row["fid"] == pytest.approx(M.frechet_distance(r, s), rel=1e-9)  # capacity >= n: every row
        assert (row["n_real"], row["n_synthetic"], row["status"]) == (len(r), len(s), "ok")
        assert out["scopes"][f"group:{groups[c]}"]["classes"] == [name]
        assert np.isfinite(row["kid_mean"]) and row["kid_std"] > 0
        lo, hi = row["fid_ci95"]
        assert 0 <= lo <= row["fid"] <= hi
    # a one-class group scope is that class's FID over all its images
    assert out["scopes"]["group:tail"]["fid"] == pytest.approx(out["per_class"]["c"]["fid"], rel=1e-9)
    assert out["scopes"]["overall"]["mean_per_class_fid"] == pytest.approx(
        np.mean([out["per_class"][n]["fid"] for n in names]))


def test_mixture_moments_equal_numpy_on_weighted_concatenation():
    rng = np.random.default_rng(0)
    parts = [rng.normal(m, s, size=(n, 5)) for m, s, n in ((0.0, 1.0, 40), (3.0, 0.5, 7), (-2.0, 2.0, 120))]
    pi = np.array([0.5, 0.3, 0.2])
    covs = [np.cov(p, rowvar=False, ddof=0) for p in parts]
    mu, sigma = M.mixture_moments(pi, [torch.from_numpy(p.mean(0)) for p in parts], [torch.from_numpy(c) for c in covs])
    x = np.concatenate(parts)
    w = np.concatenate([np.full(len(p), wc / len(p)) for p, wc in zip(parts, pi, strict=True)])
    assert np.allclose(mu.numpy(), np.average(x, axis=0, weights=w), atol=1e-12)
    assert np.allclose(sigma.numpy(), np.cov(x, rowvar=False, aweights=w, ddof=0), atol=1e-10)
    # the textbook form Σπ(Σ_c + μ_cμ_cᵀ) − μμᵀ gives the same matrix
    direct = sum(wc * (c + np.outer(p.mean(0), p.mean(0))) for wc, c, p in zip(pi, covs, parts, strict=True))
    assert np.allclose(sigma.numpy(), direct - np.outer(mu.numpy(), mu.numpy()), atol=1e-10)


@pytest.mark.parametrize("n1,n2,d", [(30, 20, 16), (200, 150, 8)])  # low-rank path, then the D×D path
def test_frechet_from_factors_equals_moments(n1, n2, d):
    from medlt.metrics.frechet import weighted_factor

    g = torch.Generator().manual_seed(n1)
    a, b = torch.randn(n1, d, generator=g), torch.randn(n2, d, generator=g) * 1.3 + 0.4
    ca = torch.randint(1, 4, (n1,), generator=g)
    cb = torch.ones(n2)
    m1, f1 = weighted_factor(a, ca)
    m2, f2 = weighted_factor(b, cb)
    rep = a.double().repeat_interleave(ca, 0)  # the weights are frequency weights
    assert torch.allclose(f1.T @ f1, torch.from_numpy(np.cov(rep.numpy(), rowvar=False)), atol=1e-10)
    val = M.frechet_distance_from_factors(m1, f1, m2, f2)
    assert val == pytest.approx(M.frechet_distance(rep, b), rel=1e-6, abs=1e-8)


def _gaussian_classes(counts, means, g):
    xs, ys = [], []
    for c, n in enumerate(counts):
        if n:
            xs.append(torch.randn(n, means.shape[1], generator=g) + means[c])
            ys.append(torch.full((n,), c))
    return torch.cat(xs), torch.cat(ys)


def test_perfect_generator_to_head_is_near_zero_class_matched_and_not_pooled():
    """Synthetic features drawn from the real class-conditionals, counts = the complement up to the
    largest class (to_head): the class mixes differ, the class-conditionals do not."""
    g = torch.Generator().manual_seed(0)
    names = [f"c{i}" for i in range(6)]
    groups = ["head", "head", "medium", "medium", "tail", "tail"]
    means = torch.randn(6, 8, generator=g) * 2
    real_n = [2000, 1200, 400, 200, 100, 60]
    syn_n = [2000 - n for n in real_n]  # c0 gets none
    st = M.ClassFeatureStats(names, groups, extractor_name="t", fid_samples_per_class=500)
    st.update("real", *_gaussian_classes(real_n, means, g))
    st.update("synthetic", *_gaussian_classes(syn_n, means, g))
    out = st.compute(kid_subset_size=100, kid_num_subsets=20, bootstrap_replicates=10)
    pooled = out["pooled"]["fid"]
    sc = out["scopes"]
    assert pooled > 5
    assert out["per_class"]["c0"]["status"] == "too_few_synthetic_images"
    assert sc["overall"]["classes"] == names[1:] and sc["overall"]["excluded"] == {"c0": "too_few_synthetic_images"}
    assert sc["overall"]["fid"] < 0.5 and sc["overall"]["fid"] < pooled / 100
    for grp in ("group:head", "group:medium", "group:tail"):
        assert sc[grp]["fid"] < 1.0 and sc[grp]["fid"] < pooled / 40, grp
    # stratified KID is ~0 (within a few subset SDs), pooled KID is not
    assert abs(sc["overall"]["kid_mean"]) < 3 * sc["overall"]["kid_std"]
    assert out["pooled"]["kid_mean"] > 10 * sc["overall"]["kid_std"]
    # an imperfect generator (shifted tail class) is caught by its group, not hidden
    shifted = means.clone()
    shifted[5] += 1.5
    bad = M.ClassFeatureStats(names, groups, extractor_name="t", fid_samples_per_class=500)
    bad.update("real", *_gaussian_classes(real_n, means, g))
    bad.update("synthetic", *_gaussian_classes(syn_n, shifted, g))
    bo = bad.compute(kid_subset_size=100, kid_num_subsets=20, bootstrap_replicates=0)
    assert bo["scopes"]["group:tail"]["fid"] > 5 * sc["group:tail"]["fid"]
    assert bo["scopes"]["group:tail"]["fid_ci95"] is None  # no replicates, no interval


def test_per_class_at_fixed_n_and_too_few_real_images():
    g = torch.Generator().manual_seed(3)
    names, groups = ["big", "mid", "rare"], ["head", "medium", "tail"]
    means = torch.randn(3, 6, generator=g)
    st = M.ClassFeatureStats(names, groups, extractor_name="t", fid_samples_per_class=100, min_real_per_class=10)
    st.update("real", *_gaussian_classes([300, 300, 4], means, g))
    st.update("synthetic", *_gaussian_classes([50, 2000, 500], means, g))
    out = st.compute(kid_subset_size=50, kid_num_subsets=10, bootstrap_replicates=5)
    pc = out["per_class"]
    assert [pc[n]["n_synthetic"] for n in names] == [50, 100, 100]
    assert [pc[n]["n_synthetic_available"] for n in names] == [50, 2000, 500]
    assert [pc[n]["at_fixed_n"] for n in names] == [False, True, True]
    assert pc["rare"]["status"] == "too_few_real_images" and pc["rare"]["fid"] is None and pc["rare"]["n_real"] == 4
    # the fixed-n FID is the FID against exactly the stored synthetic sample
    rows = st._rows[("synthetic", 1)].rows
    real_mid = st._moments[("real", 1)]
    from medlt.metrics.frechet import frechet_distance_from_moments

    ref = frechet_distance_from_moments(real_mid.mean, real_mid.covariance, rows.double().mean(0),
                                        torch.from_numpy(np.cov(rows.double().numpy(), rowvar=False)))
    assert pc["mid"]["fid"] == pytest.approx(ref, rel=1e-9)
    ov = out["scopes"]["overall"]
    assert ov["classes"] == ["big", "mid"] and ov["excluded"] == {"rare": "too_few_real_images"}
    assert ov["mean_per_class_fid"] == pytest.approx((pc["big"]["fid"] + pc["mid"]["fid"]) / 2)
    tail = out["scopes"]["group:tail"]
    assert tail["classes"] == [] and tail["fid"] is None and tail["mean_per_class_fid"] is None
    assert ov["n_real"] == 600 and ov["n_synthetic"] == 2050


def test_kid_std_not_zero_for_a_class_smaller_than_the_subset():
    g = torch.Generator().manual_seed(8)
    st = M.ClassFeatureStats(["a"], ["tail"], extractor_name="t", min_real_per_class=5, min_synthetic_per_class=5)
    st.update("real", torch.randn(12, 4, generator=g), torch.zeros(12, dtype=torch.long))
    st.update("synthetic", torch.randn(12, 4, generator=g), torch.zeros(12, dtype=torch.long))
    row = st.compute(kid_subset_size=100, kid_num_subsets=20, bootstrap_replicates=5)["per_class"]["a"]
    assert row["kid_std"] > 0
    lo, hi = row["kid_subset_interval95"]
    assert lo < row["kid_mean"] < hi


def test_multi_label_image_counts_for_each_class_and_unlabelled_only_pooled():
    st = M.ClassFeatureStats(["a", "b"], ["head", "tail"], extractor_name="t", min_real_per_class=2,
                             min_synthetic_per_class=2)
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    y = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    st.update("real", x, y)
    st.update("synthetic", x, y)
    out = st.compute(kid_subset_size=4, kid_num_subsets=2, bootstrap_replicates=0)
    assert out["per_class"]["a"]["n_real"] == 2 and out["per_class"]["b"]["n_real"] == 2
    assert out["pooled"]["n_real"] == 4 and out["n_without_positive_label"] == {"real": 1, "synthetic": 1}


def test_fast_frechet_routes_equal_scipy_also_when_singular():
    """Symmetric (Cholesky + eigvalsh) route, its swap when Σ₁ is singular, the factor route for a
    small side (n < D), all equal scipy's sqrtm formula."""
    from medlt.metrics.frechet import frechet_distance_moments_factor, weighted_factor

    g = torch.Generator().manual_seed(11)
    d = 24
    a = torch.randn(10, d, generator=g, dtype=torch.float64)  # n < D: singular covariance
    b = torch.randn(300, d, generator=g, dtype=torch.float64) * 1.2 + 0.3
    ref = _scipy_fid(a, b)
    assert M.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert M.frechet_distance(b, a) == pytest.approx(ref, rel=1e-6)
    mu_a, fa = weighted_factor(a, torch.ones(10))
    assert frechet_distance_moments_factor(b.mean(0), torch.cov(b.T), mu_a, fa) == pytest.approx(ref, rel=1e-6)
