"""Classifier losses, per sample (the training loop owns the reduction).

- single-label: softmax cross-entropy, optionally weighted per class;
- multi-label: binary cross-entropy averaged over classes per sample, optionally weighted per class.
Class-balanced weights (Cui et al. 2019, "effective number of samples"):
w_c = (1 − β) / (1 − β^{n_c}), rescaled so that Σ_c w_c = K.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def class_balanced_weights(counts: Sequence[int], beta: float = 0.9999) -> torch.Tensor:
    n = torch.tensor([max(int(c), 1) for c in counts], dtype=torch.float64)
    w = (1.0 - beta) / (1.0 - beta ** n)
    return (w / w.sum() * len(counts)).to(torch.float32)


def per_sample_loss(logits: torch.Tensor, target: torch.Tensor, *, multi_label: bool,
                    class_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """{"ce": (B,)} for single-label, {"bce": (B,)} for multi-label."""
    if multi_label:
        bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
        if class_weights is not None:
            bce = bce * class_weights.to(bce)
        return {"bce": bce.mean(dim=1)}
    ce = F.cross_entropy(logits, target.long(), reduction="none")
    if class_weights is not None:
        ce = ce * class_weights.to(ce)[target.long()]
    return {"ce": ce}
