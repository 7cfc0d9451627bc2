"""diffusion.rflow.transform_scale must act on the sampling grid and on the training draws
(issue 18 item 4: MONAI 1.6.1 drops the scheduler's scale in both places)."""

import pytest
import torch

from medlt.diffusion.rflow import flow_timesteps, is_rflow, sampling_timesteps
from medlt.diffusion.schedule import build_scheduler
from medlt.recipe.diffusion import DiffusionConfig

BASE = 16 * 16


def _cfg(scale: float, discrete: bool = False) -> DiffusionConfig:
    return DiffusionConfig(objective="rflow", rflow={"discrete_timesteps": discrete, "timestep_transform": True,
                                                     "transform_scale": scale, "base_img_size_numel": BASE})


def _shift(t_over_T: torch.Tensor, ratio: float) -> torch.Tensor:
    return ratio * t_over_T / (1 + (ratio - 1) * t_over_T)


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_training_draws_follow_the_scaled_transform(scale):
    x0 = torch.zeros(2000, 1, 32, 32)  # 4x the base pixel count in 2D: resolution ratio 2
    plain = DiffusionConfig(objective="rflow", rflow={"discrete_timesteps": False})
    a = flow_timesteps(build_scheduler(plain, spatial_dims=2), x0, torch.Generator().manual_seed(0)) / 1000
    b = flow_timesteps(build_scheduler(_cfg(scale), spatial_dims=2), x0, torch.Generator().manual_seed(0)) / 1000
    assert torch.allclose(b, _shift(a, 2.0 * scale), atol=1e-5)


def test_scale_changes_training_draws_and_sampling_grid():
    x0 = torch.zeros(500, 1, 32, 32)
    s1, s4 = build_scheduler(_cfg(1.0), spatial_dims=2), build_scheduler(_cfg(4.0), spatial_dims=2)
    assert is_rflow(s4)
    d1 = flow_timesteps(s1, x0, torch.Generator().manual_seed(3))
    d4 = flow_timesteps(s4, x0, torch.Generator().manual_seed(3))
    assert d4.mean() > d1.mean() + 100  # a larger scale shifts training toward noise
    g1 = sampling_timesteps(s1, 5, (1, 32, 32))
    g4 = sampling_timesteps(s4, 5, (1, 32, 32))
    assert g1 != g4
    plain = [1000 * (1 - k / 5) for k in range(5)]
    for t, t0 in zip(g4[:-1], plain, strict=True):  # MONAI stores the grid as float16
        assert t == pytest.approx(1000 * float(_shift(torch.tensor(t0 / 1000), 8.0)), abs=0.5)
    assert g4[-1] == 0.0


def test_discrete_grid_and_draws_with_scale():
    s = build_scheduler(_cfg(4.0, discrete=True), spatial_dims=2)
    grid = sampling_timesteps(s, 4, (1, 32, 32))
    shifted = torch.tensor([1000 * float(_shift(torch.tensor(t / 1000), 8.0)) for t in (1000, 750, 500, 250)])
    assert grid == [*map(float, shifted.half().long().tolist()), 0.0]  # MONAI: float16, then integer
    plain = DiffusionConfig(objective="rflow", rflow={"discrete_timesteps": True})
    x0 = torch.zeros(300, 1, 32, 32)
    a = flow_timesteps(build_scheduler(plain, spatial_dims=2), x0, torch.Generator().manual_seed(1))
    b = flow_timesteps(s, x0, torch.Generator().manual_seed(1))
    assert torch.allclose(b.double() / 1000, _shift(a.double() / 1000, 8.0), atol=1e-6)
