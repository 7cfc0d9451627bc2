"""DPM-Solver++ grid: the step t the model is evaluated at and the noise level σ the solver's update
uses must be the same point of the training schedule (issue 18 item 5)."""

import math

import pytest

from medlt.diffusion.dpm_solver import alpha_sigma, dpm_solver_scheduler, lambda_uniform_timesteps
from medlt.diffusion.schedule import build_scheduler
from medlt.recipe.diffusion import DiffusionConfig


@pytest.mark.parametrize("steps", [10, 20, 50])
def test_model_step_and_solver_sigma_agree(steps):
    sched = build_scheduler(DiffusionConfig())
    acp = sched.alphas_cumprod.double()
    solver = dpm_solver_scheduler(sched, steps)
    ts = [int(t) for t in solver.timesteps]
    assert len(set(ts)) == len(ts) and ts == sorted(ts, reverse=True)  # no step evaluated twice
    assert ts[0] == 999 and ts[-1] == 0
    for i, t in enumerate(ts):
        a, s = alpha_sigma(solver, i)
        assert s == pytest.approx(math.sqrt(1 - float(acp[t])), rel=1e-5), (i, t)
        assert a == pytest.approx(math.sqrt(float(acp[t])), rel=1e-5), (i, t)
    assert float(solver.sigmas[-1]) == 0.0  # the last step lands on the data


def test_grid_is_the_nearest_integer_step_to_uniform_lambda():
    sched = build_scheduler(DiffusionConfig())
    acp = sched.alphas_cumprod.double()
    lam = [0.5 * math.log(float(a) / (1 - float(a))) for a in acp]
    steps = 12
    ts = lambda_uniform_timesteps(sched.alphas_cumprod, steps)
    targets = [lam[-1] + (lam[0] - lam[-1]) * k / (steps - 1) for k in range(steps)]
    for t, target in zip(ts, targets, strict=True):  # 12 steps: no point rounds onto another
        # λ is monotone in t: the chosen step brackets the target within one integer step
        lo, hi = max(t - 1, 0), min(t + 1, len(lam) - 1)
        assert lam[hi] - 1e-12 <= target <= lam[lo] + 1e-12, (t, target)


def test_points_rounding_onto_one_step_are_dropped():
    sched = build_scheduler(DiffusionConfig())
    ts = lambda_uniform_timesteps(sched.alphas_cumprod, 50)  # near t = 0 two λ points round to t = 1
    assert len(ts) == 49 and len(set(ts)) == len(ts)
    assert len(dpm_solver_scheduler(sched, 50).timesteps) == 49
