"""Noise schedules (MONAI `DDPMScheduler`) and the time weight w_t = t / T (docs/methods.md)."""

from __future__ import annotations

import torch

from medlt.recipe.diffusion import DiffusionConfig


def build_scheduler(cfg: DiffusionConfig):
    """Training scheduler (MONAI DDPMScheduler): T steps, linear β (beta_start..beta_end),
    scaled-linear or cosine."""
    from monai.networks.schedulers import DDPMScheduler  # heavy import: only when needed

    kwargs = {}
    if cfg.schedule in ("linear_beta", "scaled_linear_beta"):
        kwargs = {"beta_start": cfg.beta_start, "beta_end": cfg.beta_end}
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, schedule=cfg.schedule,
                         prediction_type=cfg.prediction_type, clip_sample=cfg.clip_sample, **kwargs)


def time_weight(timesteps: torch.Tensor, num_train_timesteps: int,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """w_t = t / T with 0-indexed t, (B,) in `dtype` (computed in float64)."""
    return (timesteps.to(torch.float64) / float(num_train_timesteps)).to(dtype)
