"""Conditional UNet, guidance, per-sample label drop and the fused forward."""

import pytest
import torch
from torch import nn

from medlt.data.labels import LabelSpace
from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.objective import drop_labels, fused_forward, total_loss, training_terms
from medlt.diffusion.regularizers import Pass, build_regularizers
from medlt.diffusion.sampling import guided_eps
from medlt.diffusion.schedule import build_scheduler
from medlt.diffusion.unet import build_model
from medlt.recipe.diffusion import DiffusionConfig, ModelConfig, RegularizerConfig

NAMES = ("a", "b", "c")


def _cfg(**kw):
    base = dict(channels=[8, 16], attention_levels=[False, True], num_res_blocks=1, num_head_channels=8,
                norm_num_groups=4, cross_attention_dim=16)
    base.update(kw)
    return ModelConfig(**base)


def _randomize(model):
    # MONAI zero-initialises the output conv; give every weight a value so outputs depend on inputs
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_single_label_uses_k_plus_one_class_embeddings_and_null_index():
    m = _randomize(build_model(_cfg(), LabelSpace(NAMES, False)))
    assert m.unet.class_embedding.num_embeddings == 4 and m.null_label == 3
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 500])
    y = torch.tensor([0, 1, 2])
    e_null = m(x, t, y, torch.ones(3, dtype=torch.bool))
    assert torch.allclose(e_null, m(x, t, torch.full((3,), 3)), atol=1e-6)  # uncond == label K
    assert not torch.allclose(m(x, t, y), e_null, atol=1e-4)


@pytest.mark.parametrize("mode", ["time-embedding", "cross-attention"])
def test_multi_label_conditioning(mode):
    m = _randomize(build_model(_cfg(multi_label_conditioning=mode), LabelSpace(NAMES, True)))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([100, 100])
    x = torch.cat([x[:1], x[:1]])
    y = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0]])
    e = m(x, t, y)
    assert not torch.allclose(e[0], e[1], atol=1e-4)  # the label vector changes the prediction
    u = m(x, t, y, torch.ones(2, dtype=torch.bool))
    assert torch.allclose(u[0], u[1], atol=1e-6)  # null condition ignores the labels
    # the null parameters get a gradient even when no row is unconditional (DDP needs every param used)
    m.train()
    m.zero_grad()
    m(x, t, y).sum().backward()
    null = m.null_embedding if mode == "time-embedding" else m.null_tokens
    assert null.grad is not None
    assert (m.unet.with_conditioning is True) == (mode == "cross-attention")


def test_3d_forward_and_bottleneck_features():
    m = build_model(_cfg(spatial_dims=3), LabelSpace(NAMES, True))
    x = torch.randn(2, 1, 8, 8, 4)
    eps, feats = m(x, torch.tensor([1, 2]), torch.tensor([[1.0, 0, 1], [0, 0, 0]]), return_features=True)
    assert eps.shape == x.shape and feats.shape == (2, 16, 4, 4, 2)
    assert m._features is None  # nothing kept between calls


def test_bottleneck_features_are_the_middle_block_output():
    m = _randomize(build_model(_cfg(), LabelSpace(NAMES, False)))
    seen = {}
    h = m.unet.middle_block.register_forward_hook(lambda mod, a, out: seen.setdefault("out", out))
    _, feats = m(torch.randn(2, 1, 8, 8), torch.tensor([3, 4]), torch.tensor([0, 1]), return_features=True)
    h.remove()
    assert torch.equal(feats, seen["out"])


class Spy(nn.Module):
    """eps = x * (1 + label) + 10 * uncond; records every call."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.calls = []

    def forward(self, x, t, labels, uncond=None, return_features=False):
        self.calls.append((x.shape[0], labels.clone(), None if uncond is None else uncond.clone()))
        shape = (-1,) + (1,) * (x.dim() - 1)
        u = torch.zeros(x.shape[0]) if uncond is None else uncond.float()
        out = self.w * x * (1 + labels.float().view(shape)) + 10 * u.view(shape)
        return (out, out.mean(dim=(2, 3))) if return_features else out


def test_guidance_formula_one_batched_forward():
    spy = Spy()
    x = torch.randn(3, 1, 4, 4)
    y = torch.tensor([0, 1, 2])
    w = 1.6
    eps = guided_eps(spy, x, torch.zeros(3, dtype=torch.long), y, w)
    assert len(spy.calls) == 1 and spy.calls[0][0] == 6  # cond + uncond rows in ONE forward
    cond = x * (1 + y.float().view(-1, 1, 1, 1))
    unc = cond + 10
    assert torch.allclose(eps, (1 + w) * cond - w * unc)
    spy.calls.clear()
    assert torch.allclose(guided_eps(spy, x, torch.zeros(3, dtype=torch.long), y, 0.0), cond)
    assert spy.calls[0][0] == 3  # w = 0: no unconditional pass


def test_guidance_over_all_channels_real_model():
    m = _randomize(build_model(_cfg(in_channels=2, norm_num_groups=4), LabelSpace(NAMES, False)))
    x, t, y = torch.randn(2, 2, 8, 8), torch.tensor([7, 7]), torch.tensor([0, 2])
    g = guided_eps(m, x, t, y, 0.8)
    c, u = m(x, t, y), m(x, t, y, torch.ones(2, dtype=torch.bool))
    assert torch.allclose(g, 1.8 * c - 0.8 * u, atol=1e-5)


def test_label_drop_is_per_sample():
    g = torch.Generator().manual_seed(0)
    masks = torch.stack([drop_labels(64, 0.1, g) for _ in range(300)])
    assert masks.float().mean().item() == pytest.approx(0.1, abs=0.01)
    per_batch = masks.float().mean(1)
    assert ((per_batch > 0) & (per_batch < 1)).float().mean() > 0.9  # not all-or-nothing per batch
    assert not drop_labels(100, 0.0, g).any() and drop_labels(100, 1.0, g).all()


def test_training_terms_drop_mask_reaches_main_pass_and_masks_cbdm():
    spy = Spy()
    sched = build_scheduler(DiffusionConfig(num_train_timesteps=100))
    regs = build_regularizers([RegularizerConfig(name="cbdm"), RegularizerConfig(name="overlap"),
                               RegularizerConfig(name="ccua")])
    bank = LabelBank([4, 3, 2], multi_label=False)
    x0 = torch.randn(16, 1, 4, 4)
    y = torch.randint(0, 3, (16,))
    st = training_terms(spy, sched, regs, x0, y, bank=bank, label_drop_prob=0.5,
                        generator=torch.Generator().manual_seed(1))
    assert len(spy.calls) == 1 and spy.calls[0][0] == 16 * 4  # main + balanced + negative + uncond
    _, labels, uncond = spy.calls[0]
    dropped = uncond[:16]
    assert 0 < dropped.sum() < 16
    assert not uncond[16:48].any() and uncond[48:].all()  # cbdm/overlap conditional, ccua uncond
    assert (labels[32:48] != y).all()  # overlap negative labels differ
    assert set(st.terms) == {"mse", "cbdm", "overlap", "ccua_ucl", "ccua_al"}
    for k in ("cbdm", "overlap", "ccua_al"):
        assert (st.terms[k][dropped] == 0).all()
    assert all(v.shape == (16,) for v in st.terms.values())
    loss = total_loss(st)
    assert torch.isclose(loss, sum(st.weights[k] * v.mean() for k, v in st.terms.items()))


@pytest.mark.parametrize("multi", [False, True])
def test_fused_forward_equals_separate_forwards(multi):
    m = _randomize(build_model(_cfg(), LabelSpace(NAMES, multi)))
    b = 3
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(b, 1, 8, 8, generator=g), torch.tensor([3, 300, 900])
    if multi:
        ya, yb = (torch.rand(b, 3, generator=g) > 0.5).float(), (torch.rand(b, 3, generator=g) > 0.5).float()
    else:
        ya, yb = torch.tensor([0, 1, 2]), torch.tensor([2, 2, 0])
    drop = torch.tensor([False, True, False])
    passes = {"main": Pass(ya, drop), "other": Pass(yb, torch.zeros(b, dtype=torch.bool)),
              "unc": Pass(ya, torch.ones(b, dtype=torch.bool), features=True)}
    eps, feats = fused_forward(m, x, t, passes)
    for name, p in passes.items():
        e, f = m(x, t, p.labels, p.uncond, return_features=True)
        assert torch.allclose(eps[name], e, atol=1e-5)
        if name == "unc":
            assert torch.allclose(feats[name], f, atol=1e-5)
    assert set(feats) == {"unc"}
