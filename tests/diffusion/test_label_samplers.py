"""LabelBank multi-label draws include the "no positive label" vectors (normal scans)."""

import pytest
import torch

from medlt.diffusion.label_samplers import LabelBank


def _vectors():
    v = torch.zeros(40, 3)
    v[:20, 0] = 1
    v[20:25, 1] = 1
    v[25:28, 2] = 1
    v[25, 0] = 1
    return v  # rows 28..39 are all zero


def test_empirical_multi_label_prior_is_the_natural_distribution():
    v = _vectors()
    bank = LabelBank(v.sum(0).long().tolist(), multi_label=True, label_vectors=v)
    y = bank.balanced(40000, "empirical", torch.Generator().manual_seed(0))
    assert torch.allclose(y.mean(0), v.mean(0), atol=0.01)
    assert (y.sum(1) == 0).float().mean().item() == pytest.approx(12 / 40, abs=0.01)


def test_uniform_multi_label_prior_has_a_no_positive_stratum():
    v = _vectors()
    bank = LabelBank(v.sum(0).long().tolist(), multi_label=True, label_vectors=v)
    y = bank.balanced(40000, "uniform", torch.Generator().manual_seed(1))
    none = (y.sum(1) == 0).float().mean().item()
    assert abs(none - 0.25) < 0.01  # one of 4 strata
    # class 2 drawn itself (1/4), or class 0 drawn and its row with classes 0 and 2 picked (1/4 * 1/21)
    assert abs(y[:, 2].mean().item() - (0.25 + 0.25 / 21)) < 0.01
    # without normal rows, the stratum is empty and never drawn
    w = v[:28]
    y = LabelBank(w.sum(0).long().tolist(), True, w).balanced(3000, "uniform", torch.Generator().manual_seed(2))
    assert (y.sum(1) > 0).all()

