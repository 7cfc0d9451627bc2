"""Multi-label KID (issue 18 item 1): an image in the blocks of two classes must not be paired with
itself in a scope's within-side kernel means, or the KID of two samples of one distribution is
biased upward (0.24 for N(0, I), D = 64, every image in two classes, instead of ~0)."""

import itertools

import pytest
import torch

from medlt.metrics.feature_stats import ClassFeatureStats
from medlt.metrics.kid import FeatureReservoir, polynomial_kernel, stratified_mmd2_unbiased


def _brute_side_mean(blocks):
    """Σ_cd π_c π_d · mean over pairs (i in c, j in d) of different images of k(x_i, x_j)."""
    pis = torch.tensor([b[0] for b in blocks], dtype=torch.float64)
    pis = pis / pis.sum()
    total = 0.0
    for (c, (_, xc, ic)), (d, (_, xd, idd)) in itertools.product(enumerate(blocks), repeat=2):
        vals = [float(polynomial_kernel(xc[i:i + 1], xd[j:j + 1])) for i in range(len(xc)) for j in range(len(xd))
                if int(ic[i]) != int(idd[j])]
        total += float(pis[c] * pis[d]) * sum(vals) / len(vals)
    return total


def test_stratified_estimate_leaves_out_pairs_of_one_image_across_classes():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(12, 5, generator=g, dtype=torch.float64)
    fake = torch.randn(10, 5, generator=g, dtype=torch.float64)
    # real images 0..11: class a = 0..7, class b = 4..11 (4..7 carry both); fake: a = 0..5, b = 3..9
    rb = [(0.5, real[:8], torch.arange(8)), (0.5, real[4:], torch.arange(4, 12))]
    fb = [(0.5, fake[:6], torch.arange(6)), (0.5, fake[3:], torch.arange(3, 10))]
    cross = sum(0.25 * float(polynomial_kernel(x, y).mean()) for (_, x, _), (_, y, _) in itertools.product(rb, fb))
    expect = _brute_side_mean(rb) + _brute_side_mean(fb) - 2 * cross
    got = stratified_mmd2_unbiased([(p, x, torch.ones(len(x)), i) for p, x, i in rb],
                                   [(p, x, torch.ones(len(x)), i) for p, x, i in fb])
    assert got == pytest.approx(expect, rel=1e-9)
    # without ids the shared images count k(x, x) across classes: a different (biased) value
    no_ids = stratified_mmd2_unbiased([(p, x, torch.ones(len(x))) for p, x, _ in rb],
                                      [(p, x, torch.ones(len(x))) for p, x, _ in fb])
    assert abs(no_ids - got) > 1e-3


def test_disjoint_ids_change_nothing_for_single_label():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(9, 4, generator=g, dtype=torch.float64), torch.randn(7, 4, generator=g, dtype=torch.float64)
    blocks_r = [(0.3, x[:4], torch.ones(4)), (0.7, x[4:], torch.ones(5))]
    blocks_f = [(0.3, y[:3], torch.ones(3)), (0.7, y[3:], torch.ones(4))]
    with_ids = stratified_mmd2_unbiased([(*b, torch.arange(k * 10, k * 10 + len(b[1]))) for k, b in enumerate(blocks_r)],
                                        [(*b, torch.arange(k * 10, k * 10 + len(b[1]))) for k, b in enumerate(blocks_f)])
    assert with_ids == pytest.approx(stratified_mmd2_unbiased(blocks_r, blocks_f), rel=1e-12)


def test_reservoir_keeps_each_rows_image_id():
    res = FeatureReservoir(capacity=20, seed=3)
    x = torch.arange(300, dtype=torch.float32)[:, None].repeat(1, 3)
    for start in range(0, 300, 37):
        res.update(x[start:start + 37], ids=torch.arange(start, min(start + 37, 300)) * 7)
    assert len(res) == 20 and torch.equal(res.ids, (res.rows[:, 0] * 7).long())
    assert res.ids.unique().numel() == 20 and (res.ids > 20 * 7).any()  # later rows replaced early ones
    with pytest.raises(ValueError, match="3 feature rows but 2 ids"):
        res.update(x[:3], ids=torch.arange(2))


def test_multi_label_scope_kid_of_one_distribution_is_about_zero():
    """The issue's case: real and synthetic from N(0, I), D = 64, every image in both classes. One
    trial's KID has SD ~0.018 here; today's code gave ~0.24 in every trial."""
    d, n, trials = 64, 60, 40
    scope, per_class, covered = [], [], 0
    for trial in range(trials):
        g = torch.Generator().manual_seed(100 + trial)
        st = ClassFeatureStats(["a", "b"], ["head", "tail"], extractor_name="gauss", min_real_per_class=5,
                               min_synthetic_per_class=5, fid_samples_per_class=n, seed=trial)
        both = torch.ones(n, 2)
        st.update("real", torch.randn(n, d, generator=g), both)
        st.update("synthetic", torch.randn(n, d, generator=g), both)
        out = st.compute(kid_subset_size=40, kid_num_subsets=10, bootstrap_replicates=2)
        scope.append(out["scopes"]["overall"]["kid_mean"])
        per_class.append(out["per_class"]["a"]["kid_mean"])
        lo, hi = out["scopes"]["overall"]["kid_subset_interval95"]
        covered += lo <= 0.0 <= hi
    mean_scope = sum(scope) / trials
    assert abs(mean_scope) < 0.012, mean_scope  # 4 standard errors
    assert abs(mean_scope - sum(per_class) / trials) < 0.012
    assert covered >= 0.75 * trials, covered  # the interval of a single run holds 0
