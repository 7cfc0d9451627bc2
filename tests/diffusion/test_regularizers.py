"""Regularizer formulas vs float64 references written from docs/methods.md (values AND gradients)."""

import math

import pytest
import torch

from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.regularizers import (
    REGULARIZERS,
    alignment_terms,
    build_regularizers,
    cbdm_terms,
    overlap_terms,
    ucl_terms,
)
from medlt.errors import RecipeError
from medlt.recipe.diffusion import RegularizerConfig

T = 1000
B, SHAPE = 5, (1, 4, 3)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(B, *SHAPE, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(B, *SHAPE, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 250, 999, 600])
    return a, b, t


def _w(t):
    return t.to(torch.float64) / T  # w_t = t/T, 0-indexed


def _grads(fn, a, b):
    out = fn(a, b)
    ga, gb = torch.autograd.grad(out, (a, b))
    return out.detach(), ga, gb


def test_cbdm_value_and_gradients_match_design():
    h, hb, t = _inputs()
    tau, gamma = 1.7, 0.25
    n = h.numel()
    w = _w(t).view(-1, 1, 1, 1)
    val, gh, ghb = _grads(lambda a, b: cbdm_terms(a, b, t, T, tau, gamma).mean(), h, hb)
    ref = (tau * w * (h - hb) ** 2).mean() * (1 + gamma)  # value of L_cbdm (docs/methods.md)
    assert val.item() == pytest.approx(ref.item(), rel=1e-12)
    # exactly the stop-gradients of docs/methods.md
    assert torch.allclose(gh, 2 * tau * w * (h - hb).detach() / n, rtol=1e-12, atol=0)
    assert torch.allclose(ghb, 2 * gamma * tau * w * (hb - h).detach() / n, rtol=1e-12, atol=0)
    # a version without stop-gradients would give (1+γ)× these: make sure we are not that
    assert not torch.allclose(gh, (1 + gamma) * 2 * tau * w * (h - hb).detach() / n)


def test_cbdm_per_sample_values():
    h, hb, t = _inputs(1)
    v = cbdm_terms(h, hb, t, T)
    for i in range(B):
        ref = (1.25 * (t[i].item() / T) * ((h[i] - hb[i]) ** 2).mean()).item()
        assert v[i].item() == pytest.approx(ref, rel=1e-12, abs=1e-15)
    assert v.shape == (B,) and v[0].item() == 0.0  # t = 0 -> w_t = 0


def test_alignment_value_and_gradients_no_stop_gradient():
    ec, eu, t = _inputs(2)
    n = ec.numel()
    w = _w(t).view(-1, 1, 1, 1)
    val, gc, gu = _grads(lambda a, b: alignment_terms(a, b, t, T).mean(), ec, eu)
    assert val.item() == pytest.approx((w * (ec - eu) ** 2).mean().item(), rel=1e-12)
    assert torch.allclose(gc, 2 * w * (ec - eu).detach() / n, rtol=1e-12, atol=0)
    assert torch.allclose(gu, -2 * w * (ec - eu).detach() / n, rtol=1e-12, atol=0)


def _ucl_reference(feats, t, tau):
    z = feats.flatten(1)
    out = []
    for i in range(z.shape[0]):
        s = 0.0
        for j in range(z.shape[0]):
            if j != i:
                cos = (z[i] @ z[j]) / (z[i].norm() * z[j].norm())
                s = s + torch.exp((cos - 1) / tau)
        out.append((t[i].item() / T) * torch.log(1 + s))
    return torch.stack(out)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_ucl_value_and_gradients(tau):
    g = torch.Generator().manual_seed(3)
    f = torch.randn(B, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([10, 500, 999, 0, 300])
    v = ucl_terms(f, t, T, tau)
    ref = _ucl_reference(f, t, tau)
    assert torch.allclose(v, ref, rtol=1e-10, atol=1e-12)
    (g1,) = torch.autograd.grad(v.sum(), f)
    (g2,) = torch.autograd.grad(ref.sum(), f)
    assert torch.allclose(g1, g2, rtol=1e-8, atol=1e-12)


def test_ucl_is_lower_for_spread_features():
    t = torch.full((4,), 500)
    spread = torch.eye(4, dtype=torch.float64)
    same = torch.ones(4, 4, dtype=torch.float64)
    assert ucl_terms(spread, t, T).mean() < ucl_terms(same, t, T).mean()
    assert ucl_terms(same, t, T)[0].item() == pytest.approx(0.5 * math.log(1 + 3), rel=1e-12)


@pytest.mark.parametrize("kind", ["hinge", "reciprocal"])
def test_overlap_value_and_gradients(kind):
    a, b, t = _inputs(4)
    b = (a.detach() + 0.3 * b.detach()).requires_grad_(True)  # some samples inside the margin
    m = 0.05
    w = _w(t)
    d = ((a - b) ** 2).flatten(1).mean(1)
    ref = w * torch.clamp(m - d, min=0) if kind == "hinge" else w / (1 + d)
    v = overlap_terms(a, b, t, T, m, kind)
    assert torch.allclose(v, ref, rtol=1e-12, atol=0)
    ga, gb = torch.autograd.grad(v.sum(), (a, b))
    ra, rb = torch.autograd.grad(ref.sum(), (a, b))
    assert torch.allclose(ga, ra, rtol=1e-12, atol=1e-15) and torch.allclose(gb, rb, rtol=1e-12, atol=1e-15)
    # explicit derivative: hinge -> -2 w (a-b)/P inside the margin, 0 outside
    p = a[0].numel()
    if kind == "hinge":
        inside = (d < m).view(-1, 1, 1, 1)
        expect = torch.where(inside, -2 * w.view(-1, 1, 1, 1) * (a - b).detach() / p, torch.zeros_like(a))
    else:
        expect = -w.view(-1, 1, 1, 1) / (1 + d.detach()).view(-1, 1, 1, 1) ** 2 * 2 * (a - b).detach() / p
    assert torch.allclose(ga, expect, rtol=1e-10, atol=1e-15)
    if kind == "hinge":
        assert ((d < m).any() and (d >= m).any())  # both branches exercised


def test_overlap_unknown_kind():
    a, b, t = _inputs()
    with pytest.raises(RecipeError, match="did you mean 'hinge'"):
        overlap_terms(a, b, t, T, 0.1, kind="hing")


def test_registry_names_and_errors():
    assert set(REGULARIZERS.names()) >= {"cbdm", "overlap", "ccua"}
    with pytest.raises(RecipeError, match="did you mean 'cbdm'"):
        build_regularizers([RegularizerConfig(name="cbmd")])
    with pytest.raises(RecipeError, match=r"regularizers\[0\]\.options\.gama.*did you mean 'gamma'"):
        build_regularizers([RegularizerConfig(name="cbdm", options={"gama": 0.1})])
    regs = build_regularizers([RegularizerConfig(name="cbdm"), RegularizerConfig(name="ccua", weight=0.5,
                                                                                   options={"alpha": 0.1})])
    assert [r.name for r in regs] == ["cbdm", "ccua"]
    assert regs[0].prior == "empirical"
    assert build_regularizers([RegularizerConfig(name="cbdm")], fine_tuning=True)[0].prior == "uniform"


# ------------------------------------------------------------------ label samplers

def test_balanced_labels_single_label_prior():
    bank = LabelBank([60, 30, 10], multi_label=False)
    g = torch.Generator().manual_seed(0)
    y = bank.balanced(20000, "empirical", g)
    freq = torch.bincount(y, minlength=3).double() / len(y)
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64), atol=0.02)
    y = bank.balanced(20000, "uniform", g)
    freq = torch.bincount(y, minlength=3).double() / len(y)
    assert torch.allclose(freq, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.02)


def test_negative_labels_single_label_differ_and_cover_others():
    bank = LabelBank([5, 5, 5, 5], multi_label=False)
    g = torch.Generator().manual_seed(0)
    y = torch.full((4000,), 2)
    neg = bank.negative(y, g)
    assert (neg != y).all()
    freq = torch.bincount(neg, minlength=4).double() / len(neg)
    assert freq[2] == 0 and torch.allclose(freq[[0, 1, 3]], torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03)


def test_multilabel_samplers():
    vecs = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)
    bank = LabelBank(vecs.sum(0).long().tolist(), multi_label=True, label_vectors=vecs)
    g = torch.Generator().manual_seed(0)
    yb = bank.balanced(6000, "uniform", g)
    # every draw is a real training label vector
    assert all(any(torch.equal(v, r) for r in vecs) for v in yb[:200])
    # class-balanced: class 2 (1 image of 6) is the drawn class ~1/3 of the time
    assert yb[:, 2].mean().item() == pytest.approx(1 / 3, abs=0.03)
    # class 1: drawn itself (1/3), or class 0 drawn and its row [1,1,0] picked (1/3 * 1/5)
    assert yb[:, 1].mean().item() == pytest.approx(1 / 3 + 1 / 15, abs=0.03)
    y = vecs[torch.randint(0, 6, (500,), generator=g)]
    neg = bank.negative(y, g)
    assert not (neg == y).all(dim=1).any()
