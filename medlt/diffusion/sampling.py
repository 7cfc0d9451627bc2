"""The short sampling loop (MONAI's DiffusionInferer does not pass class labels): classifier-free
guidance in one batched forward, per-sample noise generators, and four samplers:

- ε-prediction (diffusion.objective epsilon): `ddim` (η = 0), `ddpm` (ancestral) and `dpm++`
  (DPM-Solver++ 2M from diffusers, medlt.diffusion.dpm_solver);
- rectified flow (objective rflow): `rflow`, Euler steps x_t′ = x_t + ((t − t′)/T)·ṽ of the flow ODE on
  MONAI RFlowScheduler's time grid (medlt.diffusion.rflow), ṽ the guided velocity.

The guidance formula is the same for every sampler, on whatever the network predicts (ε or v).

The timestep sequence comes from MONAI's scheduler (`set_timesteps`); the update is written here so
that (a) each sample's noise (initial and per step) comes from its own torch.Generator, and (b) the
previous timestep is the next one in that sequence (correct for any number of steps).
"""

from __future__ import annotations

import torch
from torch import nn

SAMPLERS = ("ddim", "ddpm", "dpm++", "rflow")


def guided_eps(model: nn.Module, x: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor,
               guidance_scale: float) -> torch.Tensor:
    """ε̃ = (1 + w)·ε(x, y) − w·ε(x, ∅) over all output channels (rectified flow: the same on v); conditional and unconditional rows
    go through the network in one batched forward. w = 0: conditional only (one pass).

    `guidance_scale`: one float, or a (B,) tensor with one w per sample (`medlt synth --guidance-from`)."""
    b = x.shape[0]
    if torch.is_tensor(guidance_scale):
        w = guidance_scale.to(x.device, torch.float32).reshape(b, *([1] * (x.dim() - 1)))
        conditional_only = not bool((w != 0).any())
    else:
        w = float(guidance_scale)
        conditional_only = w == 0
    if conditional_only:
        return model(x, timesteps, labels, torch.zeros(b, dtype=torch.bool, device=x.device))
    uncond = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    eps = model(torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([labels, labels]), uncond)
    cond, unc = eps.chunk(2)
    return (1 + w) * cond - w * unc


def initial_noise(generators: list[torch.Generator], image_shape: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([torch.randn(image_shape, generator=g) for g in generators])


@torch.no_grad()
def sample_loop(model: nn.Module, scheduler, labels: torch.Tensor, generators: list[torch.Generator],
                image_shape: tuple[int, ...], *, guidance_scale: float, num_inference_steps: int,
                sampler: str = "ddim", clip_sample: bool = True, autocast: bool = False,
                callback=None, clamp_output: bool = True) -> torch.Tensor:
    """Generate len(generators) samples (B, *image_shape) in model space, clamped to [-1, 1].

    `generators` are CPU torch.Generators, one per sample (seeded by the caller). `scheduler` is the
    training scheduler (DDPMScheduler for ddim/ddpm/dpm++, RFlowScheduler for rflow). clamp_output=False
    (latent diffusion: latents are not bounded) returns the final x unclamped."""
    from medlt.diffusion.rflow import is_rflow

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got '{sampler}'")
    if (sampler == "rflow") != is_rflow(scheduler):
        raise ValueError(f"sampler '{sampler}' does not fit the model's objective "
                         f"({'rflow' if is_rflow(scheduler) else 'epsilon'}): rectified-flow models sample "
                         f"with 'rflow', ε-prediction models with ddim, ddpm or dpm++")
    device = next(model.parameters()).device
    x = initial_noise(generators, image_shape).to(device)
    labels = labels.to(device)
    b = x.shape[0]

    def predict(x: torch.Tensor, t) -> torch.Tensor:
        tt = torch.full((b,), t, dtype=torch.long if float(t).is_integer() else torch.float32, device=device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            out = guided_eps(model, x, tt, labels, guidance_scale)
        return out.float()

    if sampler == "rflow":
        return _rflow_loop(predict, scheduler, x, num_inference_steps, image_shape, callback, clamp_output)
    if sampler == "dpm++":
        return _dpm_loop(predict, scheduler, x, num_inference_steps, clip_sample, callback, clamp_output)
    scheduler.set_timesteps(num_inference_steps)
    ts = [int(t) for t in scheduler.timesteps]
    acp = scheduler.alphas_cumprod.to(torch.float64)
    for i, t in enumerate(ts):
        prev = ts[i + 1] if i + 1 < len(ts) else -1
        a_t = float(acp[t])
        a_prev = float(acp[prev]) if prev >= 0 else 1.0
        eps = predict(x, t)
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        if clip_sample:
            x0 = x0.clamp(-1, 1)
        if sampler == "ddim":
            x = a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
        else:
            beta = 1 - a_t / a_prev
            mean = (a_prev ** 0.5 * beta / (1 - a_t)) * x0 + ((1 - beta) ** 0.5 * (1 - a_prev) / (1 - a_t)) * x
            if prev >= 0:
                var = (1 - a_prev) / (1 - a_t) * beta
                z = initial_noise(generators, image_shape).to(device)
                x = mean + var ** 0.5 * z
            else:
                x = mean
        if callback is not None:
            callback(i, len(ts))
    return x.clamp(-1, 1) if clamp_output else x


def _rflow_loop(predict, scheduler, x: torch.Tensor, steps: int, image_shape, callback,
                clamp_output: bool = True) -> torch.Tensor:
    """Euler steps on MONAI's flow-time grid (T, ..., then 0): x_t′ = x_t + ((t − t′)/T)·ṽ; the same
    update as RFlowScheduler.step for integer times, without its integer cast of the next time."""
    from medlt.diffusion.rflow import sampling_timesteps

    ts = sampling_timesteps(scheduler, steps, image_shape)
    T = float(scheduler.num_train_timesteps)
    for i in range(len(ts) - 1):
        v = predict(x, ts[i])
        x = x + ((ts[i] - ts[i + 1]) / T) * v
        if callback is not None:
            callback(i, len(ts) - 1)
    return x.clamp(-1, 1) if clamp_output else x


def _dpm_loop(predict, scheduler, x: torch.Tensor, steps: int, clip_sample: bool, callback,
              clamp_output: bool = True) -> torch.Tensor:
    """DPM-Solver++ 2M (diffusers) driven with medlt's guided ε.

    clip_sample: as DDIM clips, x̂0 = (x − σ·ε̃)/α is clamped to [−1, 1] and the state the solver
    steps from is re-formed as α·clamp(x̂0) + σ·ε̃ (ε̃ unchanged). Clamping x̂0 alone (diffusers'
    thresholding) leaves the out-of-range part of x̂0 inside x, scaled by σ_t·α_s/σ_s each step;
    at high noise that is O(1) and the samples saturate. With the state re-formed, a first-order step
    is exactly DDIM's clipped update (tests/diffusion/test_dpm_solver.py)."""
    from medlt.diffusion.dpm_solver import alpha_sigma, dpm_solver_scheduler

    solver = dpm_solver_scheduler(scheduler, steps)
    ts = [int(t) for t in solver.timesteps]
    for i, t in enumerate(ts):
        eps = predict(x, t)
        if clip_sample:  # with the solver's own α, σ of this grid point
            a, s = alpha_sigma(solver, i)
            x = a * ((x - s * eps) / a).clamp(-1, 1) + s * eps
        x = solver.step(eps, t, x, return_dict=False)[0]
        if callback is not None:
            callback(i, len(ts))
    return x.clamp(-1, 1) if clamp_output else x
