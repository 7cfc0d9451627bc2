"""The short sampling loop (MONAI's DiffusionInferer does not pass class labels): classifier-free
guidance in one batched forward, DDIM (η = 0) and DDPM updates, per-sample noise generators.

The timestep sequence comes from MONAI's scheduler (`set_timesteps`); the update is written here so
that (a) each sample's noise (initial and per step) comes from its own torch.Generator, and (b) the
previous timestep is the next one in that sequence (correct for any number of steps).
"""

from __future__ import annotations

import torch
from torch import nn


def guided_eps(model: nn.Module, x: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor,
               guidance_scale: float) -> torch.Tensor:
    """ε̃ = (1 + w)·ε(x, y) − w·ε(x, ∅) over all output channels; conditional and unconditional rows
    go through the network in one batched forward. w = 0: conditional only (one pass)."""
    b = x.shape[0]
    if guidance_scale == 0:
        return model(x, timesteps, labels, torch.zeros(b, dtype=torch.bool, device=x.device))
    uncond = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    eps = model(torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([labels, labels]), uncond)
    cond, unc = eps.chunk(2)
    return (1 + guidance_scale) * cond - guidance_scale * unc


def initial_noise(generators: list[torch.Generator], image_shape: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([torch.randn(image_shape, generator=g) for g in generators])


@torch.no_grad()
def sample_loop(model: nn.Module, scheduler, labels: torch.Tensor, generators: list[torch.Generator],
                image_shape: tuple[int, ...], *, guidance_scale: float, num_inference_steps: int,
                sampler: str = "ddim", clip_sample: bool = True, autocast: bool = False,
                callback=None) -> torch.Tensor:
    """Generate len(generators) samples (B, *image_shape) in model space, clamped to [-1, 1].

    `generators` are CPU torch.Generators, one per sample (seeded by the caller)."""
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler must be 'ddim' or 'ddpm', got '{sampler}'")
    device = next(model.parameters()).device
    scheduler.set_timesteps(num_inference_steps)
    ts = [int(t) for t in scheduler.timesteps]
    acp = scheduler.alphas_cumprod.to(torch.float64)
    x = initial_noise(generators, image_shape).to(device)
    labels = labels.to(device)
    b = x.shape[0]
    for i, t in enumerate(ts):
        prev = ts[i + 1] if i + 1 < len(ts) else -1
        a_t = float(acp[t])
        a_prev = float(acp[prev]) if prev >= 0 else 1.0
        tt = torch.full((b,), t, dtype=torch.long, device=device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            eps = guided_eps(model, x, tt, labels, guidance_scale)
        eps = eps.float()
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
    return x.clamp(-1, 1)
