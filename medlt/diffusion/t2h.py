"""T2H / Oriented Calibration (Zhang et al., ICLR 2024): a new training target, not an added term
(docs/methods.md).

Write the forward process as x_t = a·x0 + b·ε (DDPM: a = √ᾱ_t, b = √(1−ᾱ_t); rectified flow:
a = 1 − t/T, b = t/T). Per batch and without gradient:
- posterior over the batch's clean images (self included): with c_i = x_t,i/a_i and σ_i² = b_i²/a_i²
  (DDPM: 1/ᾱ_t − 1), P_ij = softmax_j(−‖c_i − x0_j‖²/(2σ_i²)) = softmax_j(−‖x_t,i − a_i·x0_j‖²/(2b_i²)),
  computed in Gram form (O(B²) memory, never a (B, B, D) tensor);
- one draw J_i ~ P_i, kept only if the training frequency of J_i's label is ≥ that of i's label
  (else J_i = i): targets move from head to tail, never the other way;
- ε̃_i = (x_t,i − a_i·x0_{J_i})/b_i, the noise that turns x0_{J_i} into the same x_t,i. With J_i = i
  it is the true noise ε_i (the component passes ε so no division by b happens there).
Label frequency of a multi-label vector: that of its rarest present class; a vector with no class
counts as the most frequent (it can only borrow from other empty vectors).
"""

from __future__ import annotations

import torch


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.detach().flatten(1).to(torch.float64 if x.dtype == torch.float64 else torch.float32)


def ddpm_coefficients(t: torch.Tensor, alphas_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) = (√ᾱ_t, √(1 − ᾱ_t)) per sample, float64."""
    ab = torch.as_tensor(alphas_bar, dtype=torch.float64).to(t.device)[t.long()]
    return ab.sqrt(), (1.0 - ab).sqrt()


def mixing_coefficients(scheduler, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) (B,) float64 of the scheduler's x_t = a·x0 + b·ε: DDPM (√ᾱ_t, √(1−ᾱ_t)); rectified flow
    (1 − t/T, t/T) with the flow time t."""
    from medlt.diffusion.rflow import is_rflow

    if is_rflow(scheduler):
        s = timesteps.to(torch.float64) / float(scheduler.num_train_timesteps)
        return 1.0 - s, s
    return ddpm_coefficients(timesteps, scheduler.alphas_cumprod)


@torch.no_grad()
def posterior(x0: torch.Tensor, x_t: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, B) P_ij = softmax_j(−‖x_t,i − a_i·x0_j‖²/(2b_i²)); rows with b_i = 0 (clean x_t) are one-hot
    on i itself."""
    x0f, xtf = _flat(x0), _flat(x_t)
    a = a.to(xtf.dtype).to(xtf.device)[:, None]
    b2 = (b.to(xtf.dtype).to(xtf.device) ** 2)[:, None]
    dist2 = ((xtf * xtf).sum(1, keepdim=True) - 2.0 * a * (xtf @ x0f.T)
             + a * a * (x0f * x0f).sum(1)[None, :])
    p = torch.softmax(-dist2.clamp(min=0.0) / (2.0 * b2.clamp(min=1e-30)), dim=1)
    eye = torch.eye(p.shape[0], dtype=p.dtype, device=p.device)
    return torch.where(b2 > 0, p, eye)


def t2h_posterior(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, alphas_bar: torch.Tensor) -> torch.Tensor:
    """(B, B) posterior of the DDPM forward process over the batch's clean images (no gradient)."""
    a, b = ddpm_coefficients(t, alphas_bar)
    return posterior(x0, x_t, a, b)


def label_frequency(labels: torch.Tensor, class_freq: torch.Tensor) -> torch.Tensor:
    """(B,) training frequency of each row's label: class_freq[y]; multi-label: its rarest present
    class, +inf for a vector with no class."""
    freq = torch.as_tensor(class_freq, dtype=torch.float64).to(labels.device)
    if labels.dim() == 1:
        return freq[labels.long()]
    present = labels.flatten(1) > 0.5
    return torch.where(present, freq[None, :], torch.full_like(freq[None, :], float("inf"))).min(dim=1).values


def gate(draw: torch.Tensor, labels: torch.Tensor, class_freq: torch.Tensor) -> torch.Tensor:
    """J_i = draw_i where freq(label of draw_i) ≥ freq(label of i), else i."""
    draw = draw.to(labels.device).long()
    f = label_frequency(labels, class_freq)
    own = torch.arange(draw.shape[0], device=draw.device)
    return torch.where(f[draw] >= f, draw, own)


@torch.no_grad()
def transferred_noise(x0: torch.Tensor, x_t: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                      source: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """ε̃_i = (x_t,i − a_i·x0_{source_i})/b_i; rows with source_i = i get `noise` itself when given."""
    shape = (-1,) + (1,) * (x_t.dim() - 1)
    dtype = x_t.dtype if x_t.dtype in (torch.float32, torch.float64) else torch.float32
    a = a.to(dtype).to(x_t.device).view(shape)
    b = b.to(dtype).to(x_t.device).view(shape)
    out = (x_t.to(dtype) - a * x0.detach().to(dtype)[source]) / b
    if noise is not None:
        own = (source == torch.arange(source.shape[0], device=source.device)).view(shape)
        out = torch.where(own, noise.to(dtype), out)
    return out


def t2h_target(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
               class_freq: torch.Tensor, alphas_bar: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
    """ε̃ of the DDPM forward process for the given draws J (B,) (gated by label frequency); no
    gradient to x0."""
    a, b = ddpm_coefficients(t, alphas_bar)
    return transferred_noise(x0, x_t, a, b, gate(draw, labels, class_freq))
