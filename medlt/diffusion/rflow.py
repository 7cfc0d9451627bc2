"""Rectified flow (`diffusion.objective: rflow`) on MONAI's `RFlowScheduler` (docs/methods.md).

MONAI's convention, which medlt follows unchanged: flow time t ∈ [0, T] (T = num_train_timesteps),
t = 0 is data and t = T is pure noise,

    x_t = (1 − t/T)·x0 + (t/T)·ε,     velocity target v = x0 − ε = −dx_t/d(t/T),

so one Euler step from t to t′ < t is x_t′ = x_t + ((t − t′)/T)·v (`RFlowScheduler.step`) and
x0 = x_t + (t/T)·v. The time weight of the regularizers stays w_t = t/T: the share of noise in
x_t, high at high noise, as t/T is for DDPM.

Training times are drawn with MONAI's `sample_timesteps` (uniform or logit-normal, optionally the
resolution transform); it draws from torch's global RNG, so `flow_timesteps` runs it under a forked
RNG seeded from the step's generator: a step's times are a pure function of that generator.

`diffusion.rflow.transform_scale` multiplies the resolution ratio of the timestep transform. MONAI
1.6.1's `set_timesteps` and `sample_timesteps` call `timestep_transform` without the scheduler's
`transform_scale`, so upstream the key changes nothing; `ScaledRFlowScheduler` passes it.
"""

from __future__ import annotations

import math

import torch


def _scaled_scheduler_class():
    from monai.networks.schedulers import RFlowScheduler
    from monai.networks.schedulers.rectified_flow import timestep_transform

    class ScaledRFlowScheduler(RFlowScheduler):
        """MONAI's RFlowScheduler with its `transform_scale` applied by the timestep transform
        (ratio = (numel / base_numel)^(1/dims) · scale), in both the sampling grid and training draws."""

        def set_timesteps(self, num_inference_steps, device=None, input_img_size_numel=None):
            # scale^dims on the pixel count is the same ratio as MONAI's ratio · scale
            if self.use_timestep_transform and input_img_size_numel is not None:
                input_img_size_numel = input_img_size_numel * self.transform_scale ** self.spatial_dim
            super().set_timesteps(num_inference_steps, device, input_img_size_numel)

        def sample_timesteps(self, x_start):
            if not self.use_timestep_transform:
                return super().sample_timesteps(x_start)
            self.use_timestep_transform = False  # MONAI's draw (and integer cast) without its transform
            try:
                t = super().sample_timesteps(x_start)
            finally:
                self.use_timestep_transform = True
            return timestep_transform(t, input_img_size_numel=torch.prod(torch.tensor(x_start.shape[2:])),
                                      base_img_size_numel=self.base_img_size_numel, scale=self.transform_scale,
                                      num_train_timesteps=self.num_train_timesteps, spatial_dim=x_start.dim() - 2)

    return ScaledRFlowScheduler


def build_rflow_scheduler(cfg, spatial_dims: int = 2):
    """`ScaledRFlowScheduler` (MONAI RFlowScheduler) from `diffusion:` (cfg.num_train_timesteps and
    cfg.rflow.*)."""
    r = cfg.rflow
    return _scaled_scheduler_class()(num_train_timesteps=cfg.num_train_timesteps,
                          use_discrete_timesteps=r.discrete_timesteps, sample_method=r.sample_method,
                          loc=r.logit_normal_loc, scale=r.logit_normal_scale,
                          use_timestep_transform=r.timestep_transform, transform_scale=r.transform_scale,
                          base_img_size_numel=r.base_img_size_numel, spatial_dim=spatial_dims)


def is_rflow(scheduler) -> bool:
    from monai.networks.schedulers import RFlowScheduler

    return isinstance(scheduler, RFlowScheduler)


def flow_timesteps(scheduler, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B,) training flow times from MONAI's `sample_timesteps`, drawn from `generator` (CPU)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    probe = torch.empty(1).expand(x0.shape[0], 1, *x0.shape[2:])  # shape only, no memory, on the CPU
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = scheduler.sample_timesteps(probe)
    return torch.as_tensor(t).reshape(-1).to(x0.device)


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """v = x0 − ε (what the network learns under objective rflow)."""
    return x0 - noise


def rflow_noise_level(t: float, num_train_timesteps: float) -> float:
    """σ/α of x_t = (1 − s)·x0 + s·ε, s = t/T: s/(1 − s), the noise level of x_t/(1 − s) = x0 + (s/(1 − s))·ε
    (the same number as √((1 − ᾱ)/ᾱ) of a DDPM schedule; inf at pure noise, s = 1)."""
    s = float(t) / float(num_train_timesteps)
    return math.inf if s >= 1 else s / (1 - s)


def sampling_timesteps(scheduler, num_inference_steps: int, image_shape: tuple[int, ...]) -> list[float]:
    """The descending flow times of `num_inference_steps` Euler steps, followed by 0 (the data end)."""
    numel = math.prod(image_shape[1:])
    scheduler.set_timesteps(num_inference_steps, input_img_size_numel=numel)
    ts = [float(t) for t in scheduler.timesteps]
    return ts + [0.0]
