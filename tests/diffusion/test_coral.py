"""CORAL: `coral_terms` against a float64 loop implementation of the issue's formulas (values and
gradients), the official effective weight, degenerate batches, the projection head in the model, and
cbdm+coral adding both terms."""

import math

import pytest
import torch

from medlt.data.labels import LabelSpace
from medlt.diffusion.coral import coral_terms
from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.objective import Pass, fused_forward, total_loss, training_terms
from medlt.diffusion.regularizers import REGULARIZERS, build_regularizers, model_heads
from medlt.diffusion.schedule import build_scheduler
from medlt.diffusion.unet import build_model
from medlt.errors import RecipeError
from medlt.recipe.diffusion import DEFAULT_REGULARIZER_WEIGHTS, RegularizerConfig
from tests.diffusion.toy import toy_recipe

T = 1000


def _reference(z, labels, t, keep, tau=0.1, kappa=0.3):
    """w̄ · SupCon with explicit loops (float64): the issue's formulas, independent of the code."""
    b = z.shape[0]
    kept = [i for i in range(b) if keep[i]]
    zn = [z[i] / torch.sqrt((z[i] ** 2).sum()) for i in range(b)]

    def same(i, j):
        return bool(torch.equal(labels[i], labels[j]))

    def s(i, j):
        return (zn[i] * zn[j]).sum() / tau

    losses = []
    any_negative = any(not same(i, j) for i in kept for j in kept if i != j)
    for i in kept:
        positives = [p for p in kept if p != i and same(i, p)]
        if not positives:
            continue
        log_den = torch.log(sum(torch.exp(s(i, a)) for a in kept if a != i))
        losses.append(-sum(s(i, p) - log_den for p in positives) / len(positives))
    if not losses or not any_negative:
        return z.sum() * 0.0
    supcon = sum(losses) / len(losses)
    w_mean = sum(math.exp((1 - float(t[i]) / T) / kappa) for i in kept) / len(kept)
    return w_mean * supcon


def _case(seed=0, multi=False):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    if multi:
        labels = torch.tensor([[1, 0, 1], [1, 0, 1], [0, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [1, 1, 0]],
                              dtype=torch.float64)
    else:
        labels = torch.tensor([0, 0, 1, 1, 1, 2, 3])
    t = torch.tensor([0, 999, 500, 10, 250, 750, 100])
    return z, labels, t


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("tau,kappa", [(0.1, 0.3), (0.5, 1.0)])
def test_value_and_gradients_match_the_formulas(multi, tau, kappa):
    z, labels, t = _case(1, multi)
    keep = torch.ones(7, dtype=torch.bool)
    got = coral_terms(z, labels, t, T, temperature=tau, kappa=kappa).mean()
    want = _reference(z, labels, t, keep, tau, kappa)
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    g_got, = torch.autograd.grad(got, z)
    g_want, = torch.autograd.grad(_reference(z, labels, t, keep, tau, kappa), z)
    assert torch.allclose(g_got, g_want, rtol=1e-9, atol=1e-12)
    # no stop-gradient: every row (anchor, positive or negative only, like row 6's label) gets gradient
    assert (g_got.abs().sum(dim=1) > 0).all()


def test_dropped_rows_are_left_out():
    z, labels, t = _case(2)
    keep = torch.tensor([True, True, True, False, True, True, False])
    got = coral_terms(z, labels, t, T, keep=keep).mean()
    assert got.item() == pytest.approx(_reference(z, labels, t, keep).item(), rel=1e-10)
    g, = torch.autograd.grad(got, z)
    assert g[3].abs().sum() == 0 and g[6].abs().sum() == 0 and g[0].abs().sum() > 0


def test_official_effective_weight_at_defaults():
    """weight 0.05 × mean(coral_terms) = τ_s·λ·mean(w)·SupCon with τ_s = 0.1, λ = 0.5."""
    z, labels, t = _case(3)
    keep = torch.ones(7, dtype=torch.bool)
    reg = build_regularizers([RegularizerConfig(name="coral")])[0]
    assert reg.weight == 0.05 == DEFAULT_REGULARIZER_WEIGHTS["coral"]
    assert (reg.temperature, reg.kappa) == (0.1, 0.3)
    got = reg.weight * coral_terms(z, labels, t, T).mean()
    assert got.item() == pytest.approx(0.1 * 0.5 * _reference(z, labels, t, keep).item(), rel=1e-10)
    assert REGULARIZERS.get("coral")().weight == DEFAULT_REGULARIZER_WEIGHTS["coral"]


def test_time_weight_favours_clean_steps():
    z, labels, _ = _case(4)
    clean = coral_terms(z, labels, torch.zeros(7, dtype=torch.long), T).mean()
    noisy = coral_terms(z, labels, torch.full((7,), 999), T).mean()
    # w(0)/w(999) = exp(0.999/0.3)
    assert (clean / noisy).item() == pytest.approx(math.exp(0.999 / 0.3), rel=1e-9)


@pytest.mark.parametrize("labels", [torch.tensor([0, 1, 2, 3]), torch.tensor([2, 2, 2, 2])])
def test_no_positive_pair_or_no_negative_gives_zero_but_stays_in_the_graph(labels):
    z = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    v = coral_terms(z, labels, torch.tensor([1, 2, 3, 4]), T)
    assert v.shape == (4,) and torch.equal(v.detach(), torch.zeros(4, dtype=torch.float64))
    g, = torch.autograd.grad(v.mean(), z)
    assert torch.equal(g, torch.zeros_like(z))


def test_every_row_dropped_gives_zero_without_nan():
    z = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    v = coral_terms(z, torch.tensor([0, 0, 1, 1]), torch.tensor([1, 2, 3, 4]), T, keep=torch.zeros(4, dtype=torch.bool))
    g, = torch.autograd.grad(v.mean(), z)
    assert torch.equal(v.detach(), torch.zeros(4, dtype=torch.float64)) and torch.equal(g, torch.zeros_like(z))


def test_float32_and_bf16_features_are_upcast():
    z, labels, t = _case(5)
    ref = coral_terms(z.detach(), labels, t, T)
    assert torch.allclose(coral_terms(z.detach().float(), labels, t, T).double(), ref, rtol=1e-4)
    assert coral_terms(z.detach().bfloat16(), labels, t, T).dtype == torch.float32


def test_unknown_option_and_bad_range_are_recipe_errors():
    with pytest.raises(RecipeError, match=r"regularizers\[0\]\.options\.tempreature.*temperature"):
        build_regularizers([RegularizerConfig(name="coral", options={"tempreature": 0.2})])
    with pytest.raises(RecipeError, match=r"regularizers\[0\]\.options\.kappa"):
        build_regularizers([RegularizerConfig(name="coral", options={"kappa": 0})])
    with pytest.raises(RecipeError, match="did you mean 'coral'"):
        build_regularizers([RegularizerConfig(name="corall")])


# ---------------------------------------------------------------- the head in the model

def _model(recipe, regs, multi=False):
    ls = LabelSpace(("a", "b", "c"), multi)
    return build_model(recipe.model, ls, heads=model_heads(regs, recipe.model.channels[-1]))


def test_projection_head_is_part_of_the_model(tmp_path):
    recipe = toy_recipe(tmp_path)
    regs = build_regularizers([RegularizerConfig(name="coral")])
    m = _model(recipe, regs)
    head = m.heads["coral"]
    assert isinstance(head, torch.nn.Linear) and head.bias is not None
    assert (head.in_features, head.out_features) == (recipe.model.channels[-1], 128)
    assert {"heads.coral.weight", "heads.coral.bias"} <= set(m.state_dict())
    assert any(p is head.weight for p in m.parameters())  # so AdamW and the EMA see it
    # old checkpoints (no head) load, and a head checkpoint loads into a model without one (sampling)
    plain = _model(recipe, [])
    before = head.weight.detach().clone()
    m.load_state_dict(plain.state_dict())
    assert torch.equal(m.heads["coral"].weight, before)
    plain.load_state_dict(m.state_dict())
    # a real mismatch is still refused
    bad = dict(plain.state_dict())
    bad.pop(next(k for k in bad if not k.startswith("heads.")))
    with pytest.raises(RuntimeError):
        plain.load_state_dict(bad)


def test_projection_comes_from_the_same_conditional_forward(tmp_path):
    recipe = toy_recipe(tmp_path)
    regs = build_regularizers([RegularizerConfig(name="coral"), RegularizerConfig(name="cbdm")])
    m = _model(recipe, regs).eval()
    x = torch.randn(3, 1, 8, 8)
    t = torch.tensor([5, 50, 90])
    y, yb = torch.tensor([0, 1, 2]), torch.tensor([2, 2, 0])
    no = torch.zeros(3, dtype=torch.bool)
    proj = {}
    eps, _ = fused_forward(m, x, t, {"main": Pass(y, no, project=True), "cbdm.balanced": Pass(yb, no)}, proj)
    assert set(proj) == {"main"}
    e_main, feats = m(x, t, y, no, return_features=True)
    want = m.heads["coral"](feats.flatten(2).mean(dim=2))
    assert torch.allclose(proj["main"]["coral"], want, atol=1e-5)
    assert torch.allclose(eps["main"], e_main, atol=1e-5)


def test_cbdm_plus_coral_adds_both_terms(tmp_path):
    recipe = toy_recipe(tmp_path)
    regs = build_regularizers([RegularizerConfig(name="cbdm"), RegularizerConfig(name="coral")])
    m = _model(recipe, regs)
    with torch.no_grad():  # MONAI zero-initialises the last convs: let the label reach the output
        g = torch.Generator().manual_seed(1)
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    sched = build_scheduler(recipe.diffusion)
    x0 = torch.randn(6, 1, 8, 8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    bank = LabelBank([2, 2, 2], False)
    st = training_terms(m, sched, regs, x0, labels, bank=bank, label_drop_prob=0.0,
                        generator=torch.Generator().manual_seed(0))
    assert set(st.terms) == {"mse", "cbdm", "coral"} and st.weights["coral"] == 0.05
    cb, co = st.terms["cbdm"].mean(), st.terms["coral"].mean()
    assert cb.item() > 0 and co.item() > 0
    total = total_loss(st)
    assert total.item() == pytest.approx((st.terms["mse"].mean() + cb + 0.05 * co).item(), rel=1e-6)
    # both terms reach the gradient: it differs from the gradient without either of them
    params = [p for p in m.parameters() if p.requires_grad]
    g_all = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
    g_no_cb = torch.autograd.grad(total - cb, params, retain_graph=True, allow_unused=True)
    g_no_co = torch.autograd.grad(total - 0.05 * co, params, allow_unused=True)

    def differ(a, b):
        return any(x is not None and y is not None and not torch.allclose(x, y) for x, y in zip(a, b, strict=True))
    assert differ(g_all, g_no_cb) and differ(g_all, g_no_co)
