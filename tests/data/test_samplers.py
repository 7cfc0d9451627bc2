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


def test_multi_label_image_probabilities():
    rng = np.random.default_rng(0)
    y = np.zeros((60, 3), np.int64)
    y[:40, 0] = 1
    y[30:50, 1] = 1   # 10 images carry classes 0 and 1
    y[50:, 2] = 1
    y[55:, 0] = 1
    del rng
    q = 0.5
    n = y.sum(0)
    p = class_probabilities(n, q)
    # P(image i) = sum over its classes c of p_c / n_c
    expected = (y * (p / n)).sum(1)
    s = ClassBalancedSampler(y, q=q, num_samples=60000, seed=2)
    observed = np.bincount(s.draw(), minlength=60)
    assert np.isclose(expected.sum(), 1.0)
    assert chisquare(observed, expected * 60000).pvalue > 1e-3


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
