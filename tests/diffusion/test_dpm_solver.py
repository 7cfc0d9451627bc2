"""DPM-Solver++ 2M (diffusers) driven by medlt's loop: against the published update rule
(Lu et al. 2022, Algorithm 2) and against the exact ODE solution for Gaussian data, whose ε is known
in closed form."""

import math
import sys

import pytest
import torch

from medlt.diffusion.dpm_solver import alpha_sigma, dpm_solver_scheduler
from medlt.diffusion.sampling import sample_loop
from medlt.diffusion.schedule import build_scheduler
from medlt.errors import MedltError
from medlt.recipe.diffusion import DiffusionConfig
from tests.diffusion.toy import toy_recipe

MU, S = 0.1, 0.4  # data: every pixel iid N(MU, S²)


class GaussianEps(torch.nn.Module):
    """The exact ε-prediction for x0 ~ N(MU, S²): E[ε | x_t] = σ_t (x_t − α_t MU) / (α_t² S² + σ_t²).
    The unconditional prediction is the same, so guidance leaves it unchanged."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.register_buffer("acp", alphas_cumprod.double())
        self.unused = torch.nn.Parameter(torch.zeros(()))  # the loop reads the device from a parameter
        self.calls = 0

    def forward(self, x, t, labels, uncond):
        self.calls += 1
        a2 = self.acp[t.long()][:, None, None, None]
        a, s = a2.sqrt(), (1 - a2).sqrt()
        return (s * (x.double() - a * MU) / (a2 * S**2 + s**2)).float()


def _exact_x0(x_start: torch.Tensor, acp_start: float) -> torch.Tensor:
    """The probability-flow ODE keeps (x_t − α_t MU)/√(α_t² S² + σ_t²) constant: the solution at σ = 0."""
    a = math.sqrt(acp_start)
    return MU + S * (x_start.double() - a * MU) / math.sqrt(acp_start * S**2 + 1 - acp_start)


def _published_2m(eps_fn, alpha: list[float], sigma: list[float], ts: list[int], x: torch.Tensor) -> torch.Tensor:
    """Algorithm 2 of Lu et al. (2022) on the grid (α_i, σ_i) (model evaluated at ts), ending at
    σ = 0 with the first-order step (there λ = ∞); float64."""
    x = x.double()
    lam = [math.log(a / s) for a, s in zip(alpha, sigma, strict=True)]
    x0_prev = None
    for i, t in enumerate(ts):
        x0 = (x - sigma[i] * eps_fn(x, t)) / alpha[i]
        if i == len(ts) - 1:
            x = x0
        else:
            h = lam[i + 1] - lam[i]
            if x0_prev is None:
                d = x0
            else:
                r = (lam[i] - lam[i - 1]) / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = (sigma[i + 1] / sigma[i]) * x - alpha[i + 1] * (math.exp(-h) - 1) * d
        x0_prev = x0
    return x


def _setup():
    sched = build_scheduler(DiffusionConfig())
    model = GaussianEps(sched.alphas_cumprod)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    x_start = torch.stack([torch.randn((1, 6, 6), generator=torch.Generator().manual_seed(s)) for s in (1, 2, 3)])
    return sched, model, gens, x_start


def test_update_matches_published_rule():
    sched, model, gens, x_start = _setup()
    steps = 20  # >= 15: diffusers' lower-order trick applies only to the final (σ = 0) step
    ours = sample_loop(model, sched, torch.zeros(3, dtype=torch.long), gens, (1, 6, 6), guidance_scale=1.5,
                       num_inference_steps=steps, sampler="dpm++", clip_sample=False)
    assert model.calls == steps  # one batched (cond + uncond) forward per step
    solver = dpm_solver_scheduler(sched, steps)
    ts = [int(t) for t in solver.timesteps]
    assert ts[0] == 999 and len(ts) == steps and ts == sorted(ts, reverse=True)
    alpha, sigma = zip(*(alpha_sigma(solver, i) for i in range(steps)), strict=True)
    # the grid is uniform in λ = log(α/σ) up to rounding to integer steps (test_dpm_solver_grid.py)
    lam = [math.log(a / s) for a, s in zip(alpha, sigma, strict=True)]
    mean_h = (lam[-1] - lam[0]) / (steps - 1)
    assert max(abs((lam[i + 1] - lam[i]) - mean_h) for i in range(steps - 1)) < 0.5 * mean_h
    acp = sched.alphas_cumprod.double()
    assert abs(alpha[0] ** 2 - float(acp[999])) < 1e-6 and abs(alpha[-1] ** 2 - float(acp[0])) < 1e-6

    def eps_fn(x, t):
        return model(x.float(), torch.full((x.shape[0],), t), None, None).double()

    ref = _published_2m(eps_fn, list(alpha), list(sigma), ts, x_start)
    ref = ref.clamp(-1, 1)  # the loop clamps its output
    assert torch.allclose(ours.double(), ref, atol=2e-4), (ours.double() - ref).abs().max()


@pytest.mark.parametrize("steps", [10, 20])
def test_reaches_the_exact_ode_solution_and_beats_ddim(steps):
    sched, model, gens, x_start = _setup()
    exact = _exact_x0(x_start, float(sched.alphas_cumprod[999]))
    inside = exact.abs() < 0.95  # the loop clamps its output to [-1, 1]
    kw = {"guidance_scale": 0.0, "num_inference_steps": steps, "clip_sample": False}
    y = torch.zeros(3, dtype=torch.long)
    err = {}
    for sampler in ("dpm++", "ddim"):
        fresh = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]  # gens are consumed by a run
        x = sample_loop(model, sched, y, fresh, (1, 6, 6), sampler=sampler, **kw).double()
        err[sampler] = (x - exact)[inside].abs().max().item()
    assert err["dpm++"] < 0.04 and err["dpm++"] < err["ddim"] / 4, err


def test_per_sample_seeds_and_clipping():
    sched, model, gens, _ = _setup()
    y = torch.zeros(3, dtype=torch.long)
    a = sample_loop(model, sched, y, gens, (1, 6, 6), guidance_scale=0.5, num_inference_steps=8, sampler="dpm++")
    b = sample_loop(model, sched, y[:1], [torch.Generator().manual_seed(3)], (1, 6, 6), guidance_scale=0.5,
                    num_inference_steps=8, sampler="dpm++")
    assert torch.allclose(a[2], b[0], atol=1e-5) and a.abs().max() <= 1


class WideEps(torch.nn.Module):
    """A smooth ε whose x0-predictions leave [-1, 1] at high noise, so clipping matters."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.9))

    def forward(self, x, t, labels, uncond):
        return self.w * x + 0.05 * torch.sin(3 * x) + 0.01 * t.float()[:, None, None, None] / 1000


def first_order_dpm_on_ddim_grid(monkeypatch, steps: int = 20):
    """The DDIM scheduler at `steps` steps; DPM-Solver++ patched to first order on the same grid
    (where it is DDIM)."""
    import medlt.diffusion.dpm_solver as dpm

    sched = build_scheduler(DiffusionConfig())
    sched.set_timesteps(steps)
    ddim_grid = [int(t) for t in sched.timesteps]
    build = dpm.dpm_solver_scheduler

    def first_order_on_ddim_grid(ddpm, n):
        from diffusers import DPMSolverMultistepScheduler

        s = DPMSolverMultistepScheduler.from_config(build(ddpm, n).config, solver_order=1, use_lu_lambdas=False)
        s.set_timesteps(timesteps=ddim_grid)
        return s

    monkeypatch.setattr(dpm, "dpm_solver_scheduler", first_order_on_ddim_grid)
    return sched


@pytest.mark.parametrize("clip", [False, True])
def test_first_order_with_clipping_is_ddim(monkeypatch, clip):
    """DPM-Solver++ at first order is DDIM; with clip_sample it must equal DDIM's clipped update
    (clamp x̂0, keep ε̃). Clamping x̂0 alone leaves its out-of-range part in x and saturates."""
    sched = first_order_dpm_on_ddim_grid(monkeypatch)
    y = torch.zeros(4, dtype=torch.long)
    out = {}
    for sampler in ("ddim", "dpm++"):
        gens = [torch.Generator().manual_seed(i) for i in range(4)]
        out[sampler] = sample_loop(WideEps(), sched, y, gens, (1, 8, 8), guidance_scale=0.0, num_inference_steps=20,
                                   sampler=sampler, clip_sample=clip, clamp_output=False)
    assert torch.allclose(out["ddim"], out["dpm++"], atol=1e-4), (out["ddim"] - out["dpm++"]).abs().max()


def test_missing_extra_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(MedltError, match=r"fast-samplers") as e:
        dpm_solver_scheduler(build_scheduler(DiffusionConfig()), 10)
    assert "\n" not in str(e.value)


def test_recipe_accepts_dpm_for_epsilon_only(tmp_path):
    assert toy_recipe(tmp_path, ["sampling.sampler=dpm++"]).sampling.sampler == "dpm++"
    from medlt.errors import RecipeError

    with pytest.raises(RecipeError, match="sampling.sampler"):
        toy_recipe(tmp_path, ["sampling.sampler=dpm++", "diffusion.objective=rflow"])
