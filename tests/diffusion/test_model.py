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


@pytest.mark.parametrize("mode", ["time-embedding", "adaptive-norm", "cross-attention"])
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
    null = m.null_tokens if mode == "cross-attention" else m.null_embedding
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


def _pair(**kw):
    """A time-embedding and an adaptive-norm model built from the same seed (same UNet and label weights)."""
    te = _randomize(build_model(_cfg(multi_label_conditioning="time-embedding", **kw), LabelSpace(NAMES, True)))
    an = build_model(_cfg(multi_label_conditioning="adaptive-norm", **kw), LabelSpace(NAMES, True)).eval()
    own = te.state_dict()
    with torch.no_grad():
        for name, v in an.state_dict().items():
            if ".scale_shift." not in name:
                v.copy_(own[name.replace("norm2.norm.", "norm2.")])
    return te, an


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_adaptive_norm_starts_as_time_embedding_and_learns_a_scale_and_shift(spatial_dims):
    te, an = _pair(spatial_dims=spatial_dims)
    blocks = [n for n, mod in an.named_modules() if type(mod).__name__ == "_AdaptiveGroupNorm"]
    assert len(blocks) == sum(type(mod).__name__ == "DiffusionUNetResnetBlock" for mod in te.modules()) > 0
    shape = (2, 1, 8, 8) + ((4,) if spatial_dims == 3 else ())
    x, t = torch.randn(shape), torch.tensor([10, 700])
    y = torch.tensor([[1.0, 0, 1], [0, 0, 0]])
    # zero-initialised scale/shift: exactly the time-embedding design's output
    assert torch.equal(te(x, t, y), an(x, t, y))
    an.train()
    an(x, t, y).square().sum().backward()
    head = dict(an.named_parameters())[f"{blocks[0]}.scale_shift.weight"]
    assert head.grad is not None and head.grad.abs().sum() > 0
    # with a scale and shift, the norm's output is GN(h)(1 + s) + b of the combined embedding
    mod = dict(an.named_modules())[blocks[0]]
    with torch.no_grad():
        mod.scale_shift.weight.normal_(0, 0.1)
    seen = {}
    hook = mod.norm.register_forward_hook(lambda m, a, o: seen.update(gn=o))
    hook2 = mod.register_forward_hook(lambda m, a, o: seen.update(out=o))
    emb = {}
    hook3 = an.unet.time_embed.register_forward_hook(lambda m, a, o: emb.update(e=o))
    an.eval()
    an(x, t, y)
    for h in (hook, hook2, hook3):
        h.remove()
    s, b = mod.scale_shift(torch.nn.functional.silu(emb["e"])).chunk(2, dim=1)
    view = (2, -1) + (1,) * spatial_dims
    torch.testing.assert_close(seen["out"], seen["gn"] * (1 + s.reshape(view)) + b.reshape(view))
    assert an._slot.value is None  # nothing kept between calls


def test_label_embedding_ratio_is_the_label_change_over_the_time_embedding():
    te, an = _pair()
    ya, yb = torch.tensor([[1.0, 0, 0], [0, 1, 1]]), torch.zeros(2, 3)
    t = torch.tensor([5, 900])
    from monai.networks.nets.diffusion_model_unet import get_timestep_embedding
    temb = te.unet.time_embed.inner(get_timestep_embedding(t, 8))
    want = (ya @ te.label_proj.weight.T - yb @ te.label_proj.weight.T).norm(dim=1) / temb.norm(dim=1)
    torch.testing.assert_close(te.label_embedding_ratio(ya, yb, t), want)
    torch.testing.assert_close(an.label_embedding_ratio(ya, yb, t), want)
    cross = build_model(_cfg(multi_label_conditioning="cross-attention"), LabelSpace(NAMES, True))
    assert cross.label_embedding_ratio(ya, yb, t) is None
    assert build_model(_cfg(), LabelSpace(NAMES, False)).label_embedding_ratio(ya, yb, t) is None
