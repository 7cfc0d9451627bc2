"""Classifier losses.

- single-label: softmax cross-entropy; with class weights w it is torch's weighted mean
  `F.cross_entropy(logits, y, weight=w)` = Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i} (LongTailCXR's
  `CrossEntropyLoss(weight=w)`), so the scale does not depend on the batch's class mix;
- multi-label: binary cross-entropy averaged over samples and classes; with class weights w it is
  `F.binary_cross_entropy_with_logits(logits, y, weight=w)` = mean_{i,c} w_c ℓ_{i,c}.
Class-balanced weights (Cui et al. 2019, "effective number of samples"):
w_c = (1 − β) / (1 − β^{n_c}), rescaled so that Σ_c w_c = K (LongTailCXR's normalisation).

Per-sample weights s_i (classifier.synthetic_loss_weight: s_i = that weight on synthetic rows, 1 on
real and copy rows) multiply the class weights, and the loss stays a weighted mean:
- single-label: Σ_i s_i w_{y_i} ℓ_i / Σ_i s_i w_{y_i} (w ≡ 1 without class weights), so with every
  s_i = 1 it is exactly the loss above, and a synthetic row counts s times a real row of its class;
- multi-label: Σ_i s_i m_i / Σ_i s_i with m_i = mean_c w_c ℓ_{i,c} (with every s_i = 1: the loss above).
Logit adjustment (Menon et al. 2021, classifier.method logit-adjusted, single-label): the loss is
the cross-entropy of the adjusted logits f(x) + τ·log π (`logit_adjustment`, π the class prior of the
real training rows); predictions use f(x) alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def class_balanced_weights(counts: Sequence[int], beta: float = 0.9999) -> torch.Tensor:
    n = torch.tensor([max(int(c), 1) for c in counts], dtype=torch.float64)
    w = (1.0 - beta) / (1.0 - beta ** n)
    return (w / w.sum() * len(counts)).to(torch.float32)


def logit_adjustment(counts: Sequence[int], tau: float = 1.0, names: Sequence[str] | None = None) -> torch.Tensor:
    """τ·log π_c with π_c = n_c / Σ n (the offsets added to the logits in training). ValueError
    naming the class when a count is 0 (log 0: that class could never be predicted in training)."""
    n = torch.tensor([int(c) for c in counts], dtype=torch.float64)
    if len(n) == 0 or bool((n <= 0).any()):
        i = int(torch.nonzero(n <= 0)[0]) if len(n) else 0
        name = names[i] if names is not None and len(n) else str(i)
        raise ValueError(f"class '{name}' has no real training row; the logit adjustment's prior log π needs "
                         f"at least one per class")
    return (tau * torch.log(n / n.sum())).to(torch.float32)


def classification_loss(logits: torch.Tensor, target: torch.Tensor, *, multi_label: bool,
                        class_weights: torch.Tensor | None = None, sample_weights: torch.Tensor | None = None,
                        logit_offsets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """{"ce": scalar} (single-label) or {"bce": scalar} (multi-label), reduced as in the docstring.

    sample_weights: (B,) per-sample weights s_i (None: torch's reductions, exactly as before);
    logit_offsets: (K,) added to the logits before the loss (logit adjustment, single-label only)."""
    w = class_weights.to(logits) if class_weights is not None else None
    if logit_offsets is not None:
        if multi_label:
            raise ValueError("logit adjustment is defined for single-label (softmax) classifiers only")
        logits = logits + logit_offsets.to(logits)
    if sample_weights is None:
        if multi_label:
            return {"bce": F.binary_cross_entropy_with_logits(logits, target.to(logits), weight=w)}
        return {"ce": F.cross_entropy(logits, target.long(), weight=w)}
    s = sample_weights.to(logits)
    if multi_label:
        per = F.binary_cross_entropy_with_logits(logits, target.to(logits), weight=w, reduction="none").mean(dim=1)
        return {"bce": (s * per).sum() / s.sum()}
    y = target.long()
    per = F.cross_entropy(logits, y, reduction="none")
    v = s * (w[y] if w is not None else 1.0)
    return {"ce": (v * per).sum() / v.sum()}


def per_sample_loss(logits: torch.Tensor, target: torch.Tensor, *, multi_label: bool) -> dict[str, torch.Tensor]:
    """Unweighted per-sample terms: {"ce": (B,)} or {"bce": (B,)} (BCE averaged over classes)."""
    if multi_label:
        bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
        return {"bce": bce.mean(dim=1)}
    return {"ce": F.cross_entropy(logits, target.long(), reduction="none")}
