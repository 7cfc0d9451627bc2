"""Classifier losses.

- single-label: softmax cross-entropy; with class weights w it is torch's weighted mean
  `F.cross_entropy(logits, y, weight=w)` = Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i} (LongTailCXR's
  `CrossEntropyLoss(weight=w)`), so the scale does not depend on the batch's class mix;
- multi-label: binary cross-entropy averaged over samples and classes; with class weights w it is
  `F.binary_cross_entropy_with_logits(logits, y, weight=w)` = mean_{i,c} w_c ℓ_{i,c}.
Class-balanced weights (Cui et al. 2019, "effective number of samples"):
w_c = (1 − β) / (1 − β^{n_c}), rescaled so that Σ_c w_c = K (LongTailCXR's normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def class_balanced_weights(counts: Sequence[int], beta: float = 0.9999) -> torch.Tensor:
    n = torch.tensor([max(int(c), 1) for c in counts], dtype=torch.float64)
    w = (1.0 - beta) / (1.0 - beta ** n)
    return (w / w.sum() * len(counts)).to(torch.float32)


def classification_loss(logits: torch.Tensor, target: torch.Tensor, *, multi_label: bool,
                        class_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """{"ce": scalar} (single-label) or {"bce": scalar} (multi-label), reduced as in the docstring."""
    w = class_weights.to(logits) if class_weights is not None else None
    if multi_label:
        return {"bce": F.binary_cross_entropy_with_logits(logits, target.to(logits), weight=w)}
    return {"ce": F.cross_entropy(logits, target.long(), weight=w)}


def per_sample_loss(logits: torch.Tensor, target: torch.Tensor, *, multi_label: bool) -> dict[str, torch.Tensor]:
    """Unweighted per-sample terms: {"ce": (B,)} or {"bce": (B,)} (BCE averaged over classes)."""
    if multi_label:
        bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
        return {"bce": bce.mean(dim=1)}
    return {"ce": F.cross_entropy(logits, target.long(), reduction="none")}
