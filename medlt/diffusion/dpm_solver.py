"""DPM-Solver++ (2M multistep; Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
Diffusion Probabilistic Models", Algorithm 2) for ε-prediction models, from diffusers'
`DPMSolverMultistepScheduler` (the optional `fast-samplers` extra).

The diffusers scheduler is built on the *training* schedule's own β (MONAI DDPMScheduler.betas), so
α_t = √ᾱ_t and σ_t = √(1−ᾱ_t) are exactly the model's. With λ_t = log(α_t/σ_t), h_i = λ_{t_i} −
λ_{t_{i−1}}, x0-predictions x̂0_i = (x_{t_i} − σ_{t_i}·ε̃_i)/α_{t_i} and r_i = h_{i−1}/h_i, one step is

    D_i = (1 + 1/(2 r_i))·x̂0_{i−1} − (1/(2 r_i))·x̂0_{i−2}    (first step: D_1 = x̂0_0)
    x_{t_i} = (σ_{t_i}/σ_{t_{i−1}})·x_{t_{i−1}} − α_{t_i}·(e^{−h_i} − 1)·D_i.

The grid t_0 > ... > t_{M−1} is uniform in λ (Lu et al.'s logSNR spacing) rounded to the nearest
integer training step, and the solver's α, σ are those of the rounded step, so the noise level the
model is told (t) and the one the update uses (σ) are the same. diffusers' `use_lu_lambdas` rounds t
for the model but keeps the unrounded σ (up to 22% apart at 50 steps) and can repeat a step; here a
point that rounds onto an earlier one is dropped (`lambda_uniform_timesteps`). On low-resolution
images it reaches the exact ODE solution of Gaussian data about 10x closer at 10 steps than
diffusers' default time-uniform grid, whose last point before σ = 0 is t = 99
(tests/diffusion/test_dpm_solver.py). The last step ends at σ = 0 (diffusers'
final_sigmas_type "zero") and is first order, x = x̂0; with fewer than 15 steps the second-to-last
step is first order as well (diffusers' lower_order_final, which stabilises few-step sampling). The update is deterministic: per-sample generators only draw
the initial noise. ε̃ is medlt's guided ε (the guidance formula is the same for every sampler).
"""

from __future__ import annotations

from medlt.errors import MedltError

EXTRA_HINT = "sampler 'dpm++' needs diffusers: pip install 'medlt[fast-samplers]' (or pip install diffusers)"


def dpm_solver_scheduler(ddpm_scheduler, num_inference_steps: int):
    """A diffusers DPMSolverMultistepScheduler (dpmsolver++, order 2, ε-prediction) on the DDPM
    scheduler's β, with `num_inference_steps` set. MedltError when diffusers is missing."""
    try:
        from diffusers import DPMSolverMultistepScheduler
    except ImportError:
        raise MedltError(EXTRA_HINT) from None
    s = DPMSolverMultistepScheduler(num_train_timesteps=int(ddpm_scheduler.num_train_timesteps),
                                    trained_betas=ddpm_scheduler.betas.double().cpu().numpy(),
                                    solver_order=2, prediction_type="epsilon", algorithm_type="dpmsolver++",
                                    solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero",
                                    thresholding=False, use_lu_lambdas=False)
    s.set_timesteps(timesteps=lambda_uniform_timesteps(ddpm_scheduler.alphas_cumprod, num_inference_steps))
    return s


def lambda_uniform_timesteps(alphas_cumprod, num_inference_steps: int) -> list[int]:
    """Distinct integer steps, descending from T−1 to 0, nearest to `num_inference_steps` points
    uniform in λ = log(α/σ) (in t, λ is interpolated linearly between integer steps, as diffusers'
    `_sigma_to_t` does). Fewer than `num_inference_steps` when two points round to one step."""
    import numpy as np

    acp = np.asarray(alphas_cumprod.double().cpu().numpy() if hasattr(alphas_cumprod, "cpu") else alphas_cumprod,
                     dtype=np.float64)
    log_ratio = 0.5 * np.log((1.0 - acp) / acp)  # −λ_t, increasing in t
    targets = np.linspace(log_ratio[-1], log_ratio[0], num_inference_steps)
    ts = np.rint(np.interp(targets, log_ratio, np.arange(len(acp)))).astype(np.int64)
    return list(dict.fromkeys(int(t) for t in ts))


def alpha_sigma(solver, index: int) -> tuple[float, float]:
    """(α, σ) of the solver's grid point `index` (diffusers keeps σ/α in `sigmas`)."""
    r = float(solver.sigmas[index])
    a = 1.0 / (r * r + 1.0) ** 0.5
    return a, r * a
