"""Per-label classifier-free dropout (model.multi_label_dropout: per-label): the unknown flags' embedding,
the null condition as "every label unknown", guidance against the row's positive labels unknown, the
training draw, and the recipe rule."""

import pytest
import torch

from medlt.data.labels import LabelSpace
from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.objective import training_terms
from medlt.diffusion.regularizers import build_regularizers
from medlt.diffusion.sampling import guided_eps
from medlt.diffusion.schedule import build_scheduler
from medlt.diffusion.unet import build_model
from medlt.errors import RecipeError
from medlt.recipe import load_recipe
from medlt.recipe.diffusion import DiffusionConfig, ModelConfig, RegularizerConfig

NAMES = ("a", "b", "c", "d")
K = len(NAMES)


def _model(mode="adaptive-norm", dropout="per-label", seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(channels=[8, 16], attention_levels=[False, True], num_res_blocks=1, num_head_channels=8,
                      norm_num_groups=4, cross_attention_dim=16, multi_label_conditioning=mode,
                      multi_label_dropout=dropout)
    m = build_model(cfg, LabelSpace(NAMES, True))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # every weight non-zero, so outputs depend on every input (unknown vectors included)
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return m.eval()


def _inputs(b=4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 1, 8, 8, generator=g)
    t = torch.tensor([5, 250, 600, 990])[:b]
    y = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.float32)[:b]
    return x, t, y


def _extra(model, y, uncond):
    """The label embedding a forward adds to the time embedding."""
    seen = {}
    h = model.unet.time_embed.register_forward_hook(lambda mod, a, out: seen.setdefault("extra", mod.extra))
    x, t, _ = _inputs(y.shape[0])
    model(x, t, y, uncond)
    h.remove()
    return seen["extra"]


@pytest.mark.parametrize("mode", ["time-embedding", "adaptive-norm"])
def test_label_embedding_is_w_of_known_labels_plus_u_of_unknown_ones(mode):
    m = _model(mode)
    _, _, y = _inputs()
    unknown = torch.tensor([[True, False, False, False], [False, True, True, False],
                            [False, False, False, False], [True, True, True, True]])
    got = _extra(m, y, unknown)
    w, b, u = m.label_proj.weight, m.label_proj.bias, m.unknown_proj.weight
    want = (y * ~unknown) @ w.T + b + unknown.float() @ u.T
    assert torch.allclose(got, want, atol=1e-6)
    # an unknown label's own value no longer matters: flipping it under the unknown flag changes nothing
    y2 = y.clone()
    y2[0, 0] = 0.0
    assert torch.equal(_extra(m, y2, unknown), got)
    assert not hasattr(m, "null_embedding")


def test_unknown_vectors_start_at_zero():
    cfg = ModelConfig(channels=[8, 16], attention_levels=[False, True], num_res_blocks=1, num_head_channels=8,
                      norm_num_groups=4, multi_label_dropout="per-label")
    m = build_model(cfg, LabelSpace(NAMES, True))
    assert m.unknown_proj.bias is None and not m.unknown_proj.weight.any()


@pytest.mark.parametrize("mode", ["time-embedding", "adaptive-norm", "cross-attention"])
def test_row_flag_means_every_label_unknown(mode):
    m = _model(mode)
    x, t, y = _inputs()
    row = torch.tensor([True, False, True, False])
    with torch.no_grad():
        a = m(x, t, y, row)
        b = m(x, t, y, row[:, None].expand(-1, K).clone())
        c = m(x, t, y)  # no mask: every label known
        d = m(x, t, y, torch.zeros(4, K, dtype=torch.bool))
        # the null condition does not depend on the labels
        e = m(x, t, torch.zeros_like(y), torch.ones(4, dtype=torch.bool))
        f = m(x, t, y, torch.ones(4, dtype=torch.bool))
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(c, d, atol=1e-6)
    assert torch.allclose(e, f, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)


def test_cross_attention_unknown_label_uses_that_class_null_token():
    m = _model("cross-attention")
    x, t, y = _inputs()
    unknown = torch.zeros(4, K, dtype=torch.bool)
    unknown[:, 2] = True
    seen = {}

    def keep(mod, args, kwargs):
        seen["context"] = kwargs.get("context")

    h = m.unet.register_forward_pre_hook(keep, with_kwargs=True)
    with torch.no_grad():
        m(x, t, y, unknown)
    h.remove()
    ctx = seen["context"]
    assert torch.equal(ctx[:, 2], m.null_tokens[2].expand(4, -1))
    assert torch.equal(ctx[0, 0], m.present_tokens[0]) and torch.equal(ctx[0, 1], m.absent_tokens[1])


def test_guidance_contrasts_the_positive_labels_unknown():
    m = _model()
    x, t, y = _inputs()
    second = m.guidance_uncond(y)
    assert torch.equal(second, torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]]).bool())
    w = 2.0
    with torch.no_grad():
        got = guided_eps(m, x, t, y, w)
        want = (1 + w) * m(x, t, y) - w * m(x, t, y, second)
    assert torch.allclose(got, want, atol=1e-5)
    joint = _model(dropout="joint")
    assert torch.equal(joint.guidance_uncond(y), torch.ones(4, dtype=torch.bool))


def test_a_label_mask_needs_per_label_dropout():
    m = _model(dropout="joint")
    x, t, y = _inputs()
    with pytest.raises(ValueError, match="multi_label_dropout"):
        m(x, t, y, torch.zeros(4, K, dtype=torch.bool))


class _Spy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x, t, labels, uncond, return_features=False, project=False):
        self.calls.append((labels.clone(), uncond.clone()))
        eps = x * self.w
        return (eps, x) if return_features else eps


def _step(p, per_label, regs=(), b=4000):
    spy = _Spy()
    sched = build_scheduler(DiffusionConfig(num_train_timesteps=100))
    y = (torch.rand(b, K, generator=torch.Generator().manual_seed(3)) < 0.4).float()
    st = training_terms(spy, sched, build_regularizers(list(regs)), torch.randn(b, 1, 2, 2), y,
                        bank=LabelBank([1] * K, True, torch.eye(K)), label_drop_prob=p,
                        generator=torch.Generator().manual_seed(0),
                        noise_generator=torch.Generator().manual_seed(1), per_label_drop=per_label)
    return spy, st, y


def test_training_draws_row_and_label_drops():
    spy, _, _ = _step(0.2, True)
    (_, uncond), = spy.calls
    assert uncond.shape == (4000, K)
    rows = uncond.all(dim=1)
    # a row is fully unknown by the row drop (0.2) or, rarely, by all K label drops (0.2^K)
    assert rows.float().mean().item() == pytest.approx(0.2 + 0.8 * 0.2 ** K, abs=0.02)
    kept = uncond[~rows]
    assert kept.float().mean().item() == pytest.approx(0.2, abs=0.02)
    # joint: one flag per row, the same row draws as per-label's row drop (same generator stream)
    joint, _, _ = _step(0.2, False)
    (_, jm), = joint.calls
    assert jm.shape == (4000,) and torch.equal(jm, uncond.all(dim=1) & jm)
    assert torch.equal(jm, rows & jm) and (rows & ~jm).sum() < 10


def test_per_label_main_pass_fuses_with_regularizer_passes():
    regs = [RegularizerConfig(name="cbdm"), RegularizerConfig(name="ccua")]
    spy, st, y = _step(0.3, True, regs, b=64)
    (labels, uncond), = spy.calls
    assert uncond.shape == (3 * 64, K)
    assert not uncond[64:128].any() and uncond[128:].all()  # cbdm balanced pass known, ccua null
    assert torch.equal(labels[:64], y)
    assert set(st.terms) == {"mse", "cbdm", "ccua_ucl", "ccua_al"}
    with pytest.raises(ValueError, match="multi-hot"):
        training_terms(_Spy(), build_scheduler(DiffusionConfig(num_train_timesteps=100)), [],
                       torch.randn(2, 1, 2, 2), torch.tensor([0, 1]), bank=LabelBank([1, 1], False),
                       label_drop_prob=0.1, generator=torch.Generator(), per_label_drop=True)


def test_recipe_refuses_per_label_dropout_on_single_label(repo_root):
    with pytest.raises(RecipeError, match="model.multi_label_dropout"):
        load_recipe(repo_root / "recipes" / "phantom" / "nih_cxr_lt.yaml", ["model.multi_label_dropout=per-label"])
    rec = load_recipe(repo_root / "recipes" / "phantom" / "nih_cxr_lt.yaml",
                      ["data.multi_label=true", "model.multi_label_dropout=per-label"])
    assert rec.model.multi_label_dropout == "per-label"
