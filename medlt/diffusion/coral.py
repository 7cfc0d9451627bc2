"""CORAL (Rodriguez et al., NeurIPS 2025): a supervised-contrastive term on the UNet's projected
bottleneck features, weighted by how clean x_t is (docs/methods.md).

`coral_terms` is the pure formula on already-projected features z (B, D). With unit-normalised rows
and s_ij = cos(z_i, z_j)/τ_s, anchor i's loss is

    ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} [s_ip − log Σ_{a≠i} exp s_ia],

P(i) = the other kept rows with the same label (multi-label: the same label vector). SupCon is the
mean of ℓ_i over the anchors A with at least one positive (0 when the kept rows have no positive pair
or no pair of different labels), and the time weight w(t) = exp((1 − t/T)/κ) enters as its batch mean.
The per-sample values are w̄·ℓ_i·B/|A| on anchors and 0 elsewhere, so their batch mean is exactly
w̄·SupCon: weight 0.05 (= τ_s·λ of the official code at its defaults) reproduces the official term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def same_label(labels: torch.Tensor) -> torch.Tensor:
    """(B, B) bool: rows i, j carry the same label (index, or the whole multi-hot vector)."""
    if labels.dim() == 1:
        return labels[:, None] == labels[None, :]
    y = labels.flatten(1) > 0.5
    return (y[:, None, :] == y[None, :, :]).all(dim=2)


def coral_time_weight(t: torch.Tensor, T: int, kappa: float, dtype: torch.dtype) -> torch.Tensor:
    """w(t) = exp((1 − t/T)/κ): large for nearly clean x_t (DDPM step or flow time, t = T is noise)."""
    return torch.exp((1.0 - t.to(torch.float64) / float(T)) / kappa).to(dtype)


def coral_terms(z: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, T: int, *,
                temperature: float = 0.1, kappa: float = 0.3,
                keep: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) per-sample CORAL values (see the module docstring). `keep` (B,) bool leaves rows out
    entirely (label-dropped rows: no anchor, positive or negative, not in w̄); default all rows.
    No stop-gradient: every kept row gets gradient as anchor, positive or negative. The result stays
    connected to z even when it is 0, so DDP sees the projection head used on every step; nothing
    here waits for the device (no host sync)."""
    zw = z if z.dtype in (torch.float32, torch.float64) else z.float()
    b = zw.shape[0]
    zn = F.normalize(zw.flatten(1), dim=1)
    s = zn @ zn.T / temperature
    kept = torch.ones(b, dtype=torch.bool, device=z.device) if keep is None else keep.to(z.device).bool()
    pair = kept[:, None] & kept[None, :] & ~torch.eye(b, dtype=torch.bool, device=z.device)
    same = same_label(labels.to(z.device))
    pos = pair & same
    n_pos = pos.sum(dim=1)
    anchors = n_pos > 0
    active = anchors.any() & (pair & ~same).any()   # a tensor: no host sync
    has_pair = pair.any(dim=1)
    # log Σ_{a≠i} exp s_ia over kept a; rows without any (left-out rows) read 0 and are masked below
    logits = torch.where(has_pair[:, None], s.masked_fill(~pair, float("-inf")), torch.zeros_like(s))
    log_denominator = torch.logsumexp(logits, dim=1)
    pos_mean = (s * pos).sum(dim=1) / n_pos.clamp(min=1)
    loss = log_denominator - pos_mean                                    # ℓ_i on anchors
    w = coral_time_weight(t.to(z.device), T, kappa, zw.dtype)
    w_mean = (w * kept).sum() / kept.sum().clamp(min=1)
    scale = w_mean * b / anchors.sum().clamp(min=1)
    # where() keeps z in the graph (zero gradient) when nothing is active
    return torch.where(anchors & active, loss * scale, torch.zeros_like(loss))
