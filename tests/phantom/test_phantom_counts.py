"""Long-tail counts follow n_c = n_max * r ** (c / (C - 1))."""

import math

import pytest

from medlt.phantom import long_tail_counts, n_max_for_total, normalize_ratio
from medlt.phantom.ct_layout import ct_class_counts
from medlt.phantom.plan import split_primaries


def test_formula_values():
    counts = long_tail_counts(1000, 5, 0.01)
    assert counts == [1000, round(1000 * 0.01 ** 0.25), 100, round(1000 * 0.01 ** 0.75), 10]
    assert counts == [1000, 316, 100, 32, 10]


def test_ratio_above_one_is_inverse():
    assert long_tail_counts(500, 20, 100) == long_tail_counts(500, 20, 0.01)
    assert normalize_ratio(50) == pytest.approx(0.02)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_bad_ratio(bad):
    with pytest.raises(ValueError, match="imbalance ratio"):
        normalize_ratio(bad)


def test_minimum_one_and_total():
    counts = long_tail_counts(n_max_for_total(800, 20, 0.01), 20, 0.01)
    assert min(counts) >= 1 and counts == sorted(counts, reverse=True)
    assert abs(sum(counts) - 800) <= 20  # rounding + minimum only
    assert counts[0] / counts[-1] == pytest.approx(100, rel=0.5)
    n_max = n_max_for_total(800, 20, 0.01)
    assert sum(n_max * 0.01 ** (c / 19) for c in range(20)) == pytest.approx(800)


def test_split_sizes():
    s = split_primaries(200, 4, 0.1, multi_label=False, per_class_val=3, per_class_test=7, test_fraction=0.25)
    assert list(s) == ["train", "balanced-val", "test", "balanced-test"]
    assert s["balanced-val"] == [3] * 4 and s["balanced-test"] == [7] * 4
    assert s["test"] == [max(1, round(n * 0.25)) for n in s["train"]]
    m = split_primaries(200, 4, 0.1, multi_label=True, per_class_val=3, per_class_test=7, test_fraction=0.25)
    assert list(m) == ["train", "val", "test"]


def test_ct_counts():
    counts = ct_class_counts(48, 18, 0.01)
    assert counts[0] == 24 and counts[-1] == 1
    assert counts[9] == max(1, math.floor(24 * 0.01 ** (9 / 17) + 0.5))
    assert ct_class_counts(4, 3, 1.0) == [2, 2, 2]
