"""ClassBalancedSampler: class frequencies ∝ n_c^q, uniform within a class, multi-label, ranks."""

import numpy as np
import pytest
from scipy.stats import chisquare

from medlt.data.samplers import ClassBalancedSampler, class_probabilities

COUNTS = [400, 100, 25, 4]


def _single_labels():
    return np.repeat(np.arange(4), COUNTS)


@pytest.mark.parametrize("q", [0.5, 0.0, 1.0])
def test_class_frequencies_follow_power_law(q):
    labels = _single_labels()
    s = ClassBalancedSampler(labels, q=q, num_samples=20000, seed=3)
    assert np.allclose(s.probabilities, class_probabilities(COUNTS, q))
    drawn = labels[s.draw()]
    observed = np.bincount(drawn, minlength=4)
    expected = np.power(COUNTS, q) / np.power(COUNTS, q).sum() * 20000
    assert chisquare(observed, expected).pvalue > 1e-3
    if q == 0.5:  # sqrt: 20:10:5:2 -> the 4-image class gets ~5.4 % instead of 0.8 %
        assert abs(observed[3] / 20000 - 2 / 37) < 0.01
    # a wrong exponent would be rejected outright
    wrong = np.power(COUNTS, q + 0.5) / np.power(COUNTS, q + 0.5).sum() * 20000
    assert chisquare(observed, wrong).pvalue < 1e-6


def test_uniform_within_class_and_deterministic():
    labels = _single_labels()
    s = ClassBalancedSampler(labels, q=0.0, num_samples=40000, seed=1)
    idx = s.draw()
    within = np.bincount(idx[labels[idx] == 1] - 400, minlength=100)
    assert chisquare(within).pvalue > 1e-3
    assert np.array_equal(idx, ClassBalancedSampler(labels, q=0.0, num_samples=40000, seed=1).draw())
    s.set_epoch(1)
    assert not np.array_equal(idx, s.draw())
    assert len(s) == 40000 and len(list(iter(s))) == 40000


def _multi_labels():
    y = np.zeros((80, 3), np.int64)
    y[:40, 0] = 1
    y[30:50, 1] = 1   # 10 images carry classes 0 and 1
    y[50:60, 2] = 1
    y[55:60, 0] = 1
    return y          # rows 60..79: no positive label (normal scans)


@pytest.mark.parametrize("q", [0.5, 0.0])
def test_multi_label_image_probabilities(q):
    y = _multi_labels()
    strata = np.concatenate([y, (y.sum(1, keepdims=True) == 0)], axis=1)
    n = strata.sum(0)
    # P(image i) ∝ (1/|S_i|) Σ_{s ∈ S_i} n_s^(q-1), the "no positive label" rows forming one stratum
    expected = (strata * n ** (q - 1.0)).sum(1) / strata.sum(1)
    expected /= expected.sum()
    s = ClassBalancedSampler(y, q=q, num_samples=80000, seed=2)
    assert np.allclose(s.row_probabilities, expected)
    observed = np.bincount(s.draw(), minlength=80)
    assert observed[60:].sum() > 0  # all-zero rows are drawn
    assert chisquare(observed, expected * 80000).pvalue > 1e-3
    assert s.probabilities.shape == (4,) and np.isclose(s.probabilities.sum(), 1.0)


def test_multi_label_q1_is_the_natural_distribution_all_zero_rows_included():
    y = _multi_labels()
    s = ClassBalancedSampler(y, q=1.0, num_samples=40000, seed=7)
    idx = s.draw()
    # every row equally likely, the 20 normal rows included
    assert chisquare(np.bincount(idx, minlength=80)).pvalue > 1e-3
    # class and "no positive label" frequencies among the drawn rows match the data's
    drawn = y[idx]
    natural = np.append(y.mean(0), (y.sum(1) == 0).mean())
    empirical = np.append(drawn.mean(0), (drawn.sum(1) == 0).mean())
    assert np.allclose(empirical, natural, atol=0.01)
    assert empirical[3] == pytest.approx(0.25, abs=0.01)


def test_multi_label_q0_single_positive_strata_are_uniform():
    y = np.zeros((100, 2), np.int64)
    y[:70, 0] = 1
    y[70:75, 1] = 1   # 25 normal rows
    s = ClassBalancedSampler(y, q=0.0, num_samples=30000, seed=1)
    drawn = y[s.draw()]
    freq = [drawn[:, 0].mean(), drawn[:, 1].mean(), (drawn.sum(1) == 0).mean()]
    assert chisquare(np.array(freq) * 30000, np.full(3, 10000)).pvalue > 1e-3
    assert np.allclose(s.probabilities, 1 / 3)


def test_ranks_split_one_global_sequence():
    labels = _single_labels()
    full = ClassBalancedSampler(labels, q=0.5, num_samples=1000, seed=5).draw()
    r0 = ClassBalancedSampler(labels, q=0.5, num_samples=500, seed=5, rank=0, world_size=2).draw()
    r1 = ClassBalancedSampler(labels, q=0.5, num_samples=500, seed=5, rank=1, world_size=2).draw()
    assert np.array_equal(r0, full[0::2]) and np.array_equal(r1, full[1::2])
    assert len(ClassBalancedSampler(labels, world_size=3, rank=2)) == -(-529 // 3)


def test_empty_classes_get_no_draws():
    labels = np.array([0, 0, 2, 2, 2])
    s = ClassBalancedSampler(labels, q=0.5, num_samples=500, num_classes=4)
    assert s.probabilities[1] == 0 and s.probabilities[3] == 0
    assert set(labels[s.draw()]) == {0, 2}
