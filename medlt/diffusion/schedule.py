"""Noise schedules (MONAI `DDPMScheduler`, or `RFlowScheduler` for rectified flow) and the time
weight w_t = t / T (docs/methods.md): for DDPM t is the 0-indexed step, for rectified flow the flow
time (t = T pure noise); in both, w_t grows with the share of noise in x_t."""

from __future__ import annotations

import torch

from medlt.recipe.diffusion import DiffusionConfig


def build_scheduler(cfg: DiffusionConfig, spatial_dims: int = 2):
    """Training scheduler of the objective: epsilon -> MONAI DDPMScheduler (T steps, linear β
    beta_start..beta_end, scaled-linear or cosine); rflow -> MONAI RFlowScheduler
    (medlt.diffusion.rflow)."""
    from monai.networks.schedulers import DDPMScheduler  # heavy import: only when needed

    if cfg.objective == "rflow":
        from medlt.diffusion.rflow import build_rflow_scheduler

        return build_rflow_scheduler(cfg, spatial_dims)
    kwargs = {}
    if cfg.schedule in ("linear_beta", "scaled_linear_beta"):
        kwargs = {"beta_start": cfg.beta_start, "beta_end": cfg.beta_end}
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, schedule=cfg.schedule,
                         prediction_type=cfg.prediction_type, clip_sample=cfg.clip_sample, **kwargs)


def time_weight(timesteps: torch.Tensor, num_train_timesteps: int,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """w_t = t / T with 0-indexed DDPM steps or flow times t, (B,) in `dtype` (computed in float64)."""
    return (timesteps.to(torch.float64) / float(num_train_timesteps)).to(dtype)
