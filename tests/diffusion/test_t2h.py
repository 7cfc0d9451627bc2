"""T2H: posterior, gate and transferred target against float64 references written from the issue's
formulas (c_i = x_t/√ᾱ, σ² = 1/ᾱ − 1), no gradient to x0, multi-label frequencies, and the component
in a training step under both objectives."""

import pytest
import torch

from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.objective import training_terms
from medlt.diffusion.regularizers import build_regularizers
from medlt.diffusion.rflow import flow_timesteps, is_rflow
from medlt.diffusion.schedule import build_scheduler
from medlt.diffusion.t2h import label_frequency, mixing_coefficients, posterior, t2h_posterior, t2h_target
from medlt.errors import RecipeError
from medlt.recipe.diffusion import RegularizerConfig
from tests.diffusion.toy import toy_recipe

T = 1000


def _alphas_bar():
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def _batch(seed=0, b=6):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(b, 1, 4, 3, generator=g, dtype=torch.float64) * 0.3
    noise = torch.randn(b, 1, 4, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([999, 900, 700, 800, 950, 600][:b])
    ab = _alphas_bar()
    x_t = ab[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - ab[t]).sqrt().view(-1, 1, 1, 1) * noise
    return x0, x_t, noise, t, ab


def _posterior_reference(x0, x_t, t, ab):
    b = x0.shape[0]
    p = torch.zeros(b, b, dtype=torch.float64)
    for i in range(b):
        a = ab[t[i]]
        c = x_t[i] / a.sqrt()
        sigma2 = 1 / a - 1
        logits = torch.stack([-((c - x0[j]) ** 2).sum() / (2 * sigma2) for j in range(b)])
        p[i] = torch.exp(logits - logits.max()) / torch.exp(logits - logits.max()).sum()
    return p


def test_posterior_matches_the_formula():
    x0, x_t, _, t, ab = _batch()
    got = t2h_posterior(x0, x_t, t, ab)
    want = _posterior_reference(x0, x_t, t, ab)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    assert torch.allclose(got.sum(1), torch.ones(6, dtype=torch.float64))
    assert 0.02 < got.min() and got.max() < 0.9  # noisy steps: a real spread, not one-hot
    # float32 inputs (the Gram form in float32) agree closely
    got32 = t2h_posterior(x0.float(), x_t.float(), t, ab)
    assert torch.allclose(got32.double(), want, atol=1e-5)


def test_posterior_of_a_clean_step_is_self_and_of_pure_noise_uniform():
    x0, _, _, _, _ = _batch()
    a, b = torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    assert torch.equal(posterior(x0, x0, a, b), torch.eye(6, dtype=torch.float64))
    noise = torch.randn_like(x0)
    p = posterior(x0, noise, torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64))
    assert torch.allclose(p, torch.full((6, 6), 1 / 6, dtype=torch.float64))


def _target_reference(x0, x_t, t, labels, freq, ab, draw):
    out = torch.empty_like(x_t)
    for i in range(x0.shape[0]):
        j = int(draw[i])
        if freq[int(labels[j])] < freq[int(labels[i])]:
            j = i
        a = ab[t[i]]
        out[i] = (x_t[i] - a.sqrt() * x0[j]) / (1 - a).sqrt()
    return out


def test_target_gate_and_formula():
    x0, x_t, noise, t, ab = _batch(1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    freq = torch.tensor([50, 10, 3])
    draw = torch.tensor([4, 2, 0, 5, 1, 3])   # 0<-2 (tail source: refused), 2<-0 (head: kept), ...
    got = t2h_target(x0, x_t, t, labels, freq, ab, draw)
    want = _target_reference(x0, x_t, t, labels, freq, ab, draw)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-10)
    # refused draws (source rarer than i) fall back to the true noise
    assert torch.allclose(got[0], noise[0], atol=1e-9) and torch.allclose(got[1], noise[1], atol=1e-9)
    assert not torch.allclose(got[2], noise[2])  # 2 <- 0 moved (class 0 is more frequent)
    # identity draw: the true noise everywhere
    own = t2h_target(x0, x_t, t, labels, freq, ab, torch.arange(6))
    assert torch.allclose(own, noise, atol=1e-9)


def test_no_gradient_to_x0():
    x0, x_t, _, t, ab = _batch(2)
    x0 = x0.clone().requires_grad_(True)
    out = t2h_target(x0, x_t, t, torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([5, 5]), ab,
                     torch.tensor([1, 0, 3, 2, 5, 4]))
    assert not out.requires_grad and out.grad_fn is None
    assert not t2h_posterior(x0, x_t, t, ab).requires_grad


def test_multi_label_frequency_is_the_rarest_present_class():
    freq = torch.tensor([100, 20, 5])
    y = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 0]])
    assert label_frequency(y, freq).tolist() == [100, 20, 5, float("inf")]


def test_weight_other_than_one_and_options_are_refused():
    with pytest.raises(RecipeError, match=r"regularizers\[0\]\.weight.*must be 1"):
        build_regularizers([RegularizerConfig(name="t2h", weight=0.5)])
    with pytest.raises(RecipeError, match=r"regularizers\[0\]\.options\.gate"):
        build_regularizers([RegularizerConfig(name="t2h", options={"gate": 1})])
    assert RegularizerConfig(name="t2h").weight == 1.0


@pytest.mark.parametrize("objective", ["epsilon", "rflow"])
def test_mixing_coefficients_reproduce_the_schedulers_add_noise(objective, tmp_path):
    over = [f"diffusion.objective={objective}"] + (["sampling.sampler=rflow"] if objective == "rflow" else [])
    sched = build_scheduler(toy_recipe(tmp_path, over).diffusion)
    x0, noise = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 1, 50, 99])
    a, b = mixing_coefficients(sched, t)
    want = sched.add_noise(original_samples=x0, noise=noise, timesteps=t)
    got = a.float().view(-1, 1, 1, 1) * x0 + b.float().view(-1, 1, 1, 1) * noise
    assert torch.allclose(got, want, atol=1e-6)


class _Zero(torch.nn.Module):
    """ε_θ = 0: the step's mse is then mean(target²), which reveals the target."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, labels, uncond, return_features=False):
        return x * self.p


@pytest.mark.parametrize("objective", ["epsilon", "rflow"])
def test_component_targets_are_transfers_toward_rarer_labels(objective, tmp_path):
    over = [f"diffusion.objective={objective}"] + (["sampling.sampler=rflow"] if objective == "rflow" else [])
    recipe = toy_recipe(tmp_path, over)
    sched = build_scheduler(recipe.diffusion)
    regs = build_regularizers([RegularizerConfig(name="t2h")])
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 1, 8, 8, generator=g) * 0.05 + torch.arange(8.0).view(-1, 1, 1, 1) * 0.01
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    counts = [40, 10, 2]
    bank = LabelBank(counts, False)
    moved_any = False
    for seed in range(6):
        st = training_terms(_Zero(), sched, regs, x0, labels, bank=bank, label_drop_prob=0.5,
                            generator=torch.Generator().manual_seed(seed))
        # rebuild the step's x_t and noise from the same generator (t, drop mask, ε), then find
        # each row's source image: the j whose target reproduces the row's mse
        gen = torch.Generator().manual_seed(seed)
        t = flow_timesteps(sched, x0, gen) if is_rflow(sched) else torch.randint(0, 100, (8,), generator=gen)
        torch.rand(8, generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a, b = mixing_coefficients(sched, t)
        x_t = sched.add_noise(original_samples=x0, noise=noise, timesteps=t)
        for i in range(8):
            fits = []
            for j in range(8):
                eps = noise[i] if j == i else (x_t[i] - a[i] * x0[j]) / b[i]
                target = x0[j] - eps if objective == "rflow" else eps
                fits.append(abs(target.double().pow(2).mean().item() - st.terms["mse"][i].item()))
            j = min(range(8), key=fits.__getitem__)
            assert fits[j] < 1e-4 * max(1.0, st.terms["mse"][i].item())
            assert counts[labels[j]] >= counts[labels[i]], (seed, i, j)   # head -> tail only
            moved_any |= j != i
        assert st.weights["t2h_moved"] == 0.0 and st.terms["t2h_moved"].shape == (8,)
    assert moved_any
