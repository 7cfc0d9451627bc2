"""The sampling loop against an oracle ε for a one-point data distribution (x0 = c): DDIM returns c,
DDPM lands next to c; per-sample generators make images independent of their batch."""

import pytest
import torch
from torch import nn

from medlt.diffusion.sampling import sample_loop
from medlt.diffusion.schedule import build_scheduler
from medlt.recipe.diffusion import DiffusionConfig


class Oracle(nn.Module):
    """Exact ε(x_t, t) when x0 is the constant image `targets[label]`; the null label predicts 0."""

    def __init__(self, scheduler, targets):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.acp = scheduler.alphas_cumprod
        self.targets = targets

    def forward(self, x, t, labels, uncond=None):
        a = self.acp[t].view(-1, 1, 1, 1).to(x.dtype)
        c = self.targets[labels].view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * c) / (1 - a).sqrt()
        if uncond is not None:
            eps = torch.where(uncond.view(-1, 1, 1, 1), (x - a.sqrt() * 0.0) / (1 - a).sqrt(), eps)
        return eps


@pytest.mark.parametrize("schedule", ["linear_beta", "cosine"])
@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_recovers_the_data_point(schedule, steps):
    sched = build_scheduler(DiffusionConfig(schedule=schedule))
    model = Oracle(sched, torch.tensor([-0.5, 0.25, 0.75]))
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    x = sample_loop(model, sched, torch.tensor([0, 1, 2]), gens, (1, 4, 4), guidance_scale=0.0,
                    num_inference_steps=steps, sampler="ddim")
    assert torch.allclose(x[:, 0, 0, 0], torch.tensor([-0.5, 0.25, 0.75]), atol=1e-4)


def test_ddpm_lands_near_the_data_point_and_uses_per_sample_noise():
    sched = build_scheduler(DiffusionConfig())
    model = Oracle(sched, torch.tensor([-0.5, 0.5]))
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    a = sample_loop(model, sched, torch.tensor([0, 1]), gens([1, 2]), (1, 4, 4), guidance_scale=0.0,
                    num_inference_steps=100, sampler="ddpm")
    assert torch.allclose(a.mean(dim=(1, 2, 3)), torch.tensor([-0.5, 0.5]), atol=0.05)
    b = sample_loop(model, sched, torch.tensor([1]), gens([2]), (1, 4, 4), guidance_scale=0.0,
                    num_inference_steps=100, sampler="ddpm")
    assert torch.allclose(a[1], b[0], atol=1e-6)


def test_guidance_pushes_away_from_unconditional():
    # oracle's unconditional target is 0; guidance w extrapolates x0 to (1 + w) c (then clamped)
    sched = build_scheduler(DiffusionConfig())
    model = Oracle(sched, torch.tensor([0.4]))
    x = sample_loop(model, sched, torch.tensor([0]), [torch.Generator().manual_seed(0)], (1, 2, 2),
                    guidance_scale=1.0, num_inference_steps=50, sampler="ddim")
    assert x.mean().item() > 0.45
