"""One training step's loss terms: the objective's MSE (ε-prediction: target ε; rectified flow:
target v = x0 − ε, see medlt.diffusion.rflow) plus every active regularizer, with the main pass
and all extra passes (balanced label, negative label, unconditional) in ONE batched forward. The
regularizers act on the network output, whichever the objective. A component may replace the target
(T2H: the target of another clean image of the batch, still ε or v = x0′ − ε̃ by the objective) and
may ask for the main pass's head projections (CORAL).

`training_terms` returns named per-sample terms with their weights; `total_loss` is the loop's
reduction (mean over the batch of the weighted sum). Nothing here depends on which regularizers are
active.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.regularizers import Pass, Regularizer, StepContext
from medlt.diffusion.rflow import flow_timesteps, is_rflow


@dataclass
class StepTerms:
    terms: dict[str, torch.Tensor]   # name -> (B,) per-sample values
    weights: dict[str, float]        # name -> weight in the total loss


def drop_labels(batch: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample classifier-free-guidance drop mask (B,) bool, each sample with probability p."""
    return torch.rand(batch, generator=generator) < p


def fused_forward(model: nn.Module, x_t: torch.Tensor, timesteps: torch.Tensor, passes: dict[str, Pass],
                  projections: dict | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Run every pass through the network in one batched forward; split eps (and bottleneck features
    of the passes that asked for them) back per pass. With `projections` (a dict), the head projections
    of the passes that asked for them are put in it: pass name -> head name -> (B, D)."""
    names = list(passes)
    n = len(names)
    want = any(p.features for p in passes.values())
    project = any(p.project for p in passes.values())
    x = x_t.repeat(n, *([1] * (x_t.dim() - 1)))
    t = timesteps.repeat(n)
    labels = torch.cat([passes[k].labels.to(x_t.device) for k in names], dim=0)
    uncond = torch.cat([passes[k].uncond.to(x_t.device) for k in names], dim=0)
    proj = None
    if project:
        eps, feats, proj = model(x, t, labels, uncond, return_features=True, project=True)
    elif want:
        eps, feats = model(x, t, labels, uncond, return_features=True)
    else:
        eps, feats = model(x, t, labels, uncond), None
    eps_parts = dict(zip(names, eps.chunk(n, dim=0), strict=True))
    feat_parts = {}
    if feats is not None and want:
        for k, f in zip(names, feats.chunk(n, dim=0), strict=True):
            if passes[k].features:
                feat_parts[k] = f
    if proj is not None and projections is not None:
        for head, z in proj.items():
            for k, zk in zip(names, z.chunk(n, dim=0), strict=True):
                if passes[k].project:
                    projections.setdefault(k, {})[head] = zk
    return eps_parts, feat_parts


def training_terms(model: nn.Module, scheduler, regularizers: list[Regularizer], x0: torch.Tensor,
                   labels: torch.Tensor, *, bank: LabelBank, label_drop_prob: float,
                   generator: torch.Generator, noise_generator: torch.Generator | None = None,
                   autocast: bool = False) -> StepTerms:
    """x0 (B, C, ...) in model space, labels (B,) int64 or (B, K) float. `generator` (CPU) draws t,
    the drop mask and the regularizers' labels; `noise_generator` (on x0's device) draws ε."""
    b = x0.shape[0]
    device = x0.device
    T = scheduler.num_train_timesteps
    flow = is_rflow(scheduler)
    if flow:  # rectified flow: MONAI's time sampling (uniform / logit-normal), from `generator`
        timesteps = flow_timesteps(scheduler, x0, generator)
    else:
        timesteps = torch.randint(0, T, (b,), generator=generator).to(device)
    dropped = drop_labels(b, label_drop_prob, generator).to(device)
    noise = torch.randn(x0.shape, generator=noise_generator or generator,
                        device=(noise_generator.device if noise_generator is not None else "cpu"))
    noise = noise.to(device)
    x_t = scheduler.add_noise(original_samples=x0, noise=noise, timesteps=timesteps)
    ctx = StepContext(labels=labels, dropped=dropped, timesteps=timesteps, num_train_timesteps=T,
                      generator=generator, bank=bank, x0=x0, x_t=x_t, noise=noise, scheduler=scheduler,
                      flow=flow)
    passes: dict[str, Pass] = {"main": Pass(labels, dropped,
                                            project=any(r.main_projection for r in regularizers))}
    for reg in regularizers:
        for name, p in reg.extra_passes(ctx).items():
            passes[name] = p
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
        ctx.outputs, ctx.features = fused_forward(model, x_t, timesteps, passes, ctx.projections)
    target = ctx.target_of(x0.float(), noise.float())
    for reg in regularizers:
        target = reg.adjust_target(ctx, target)
    mse = (ctx.outputs["main"].float() - target).pow(2).flatten(1).mean(dim=1)
    terms, weights = {"mse": mse}, {"mse": 1.0}
    for reg in regularizers:
        for name, (value, weight) in reg.terms(ctx).items():
            terms[name], weights[name] = value, weight
    return StepTerms(terms, weights)


def total_loss(step: StepTerms) -> torch.Tensor:
    """The loop's reduction: Σ_name weight · mean_B(term)."""
    return sum(step.weights[k] * v.mean() for k, v in step.terms.items())
