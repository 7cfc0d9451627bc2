"""Label samplers for the regularizers' extra passes (docs/methods.md).

`LabelBank` holds the training split's class counts (and, multi-label, its label vectors):
- `balanced`: CBDM's y′. Single-label: a class from the empirical class prior (n_c / N) or uniform.
  Multi-label, "empirical": a training label vector drawn uniformly (the natural distribution,
  all-zero "no finding" vectors included); "uniform": a stratum drawn uniformly among the K classes
  and the "no positive label" stratum (those that have rows), then a random training label vector
  of that stratum (one that contains the class, or an all-zero one).
- `negative`: the overlap term's c′ ≠ y. Single-label: uniform over the other K−1 classes.
  Multi-label: a random training label vector different from y (if the draw equals y, one random
  class bit of y is flipped instead).
All draws use the caller's torch.Generator (CPU), so a step's labels are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medlt.errors import DataError


class LabelBank:
    def __init__(self, class_counts: Sequence[int], multi_label: bool,
                 label_vectors: torch.Tensor | None = None):
        self.counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
        self.num_classes = len(self.counts)
        self.multi_label = multi_label
        if self.counts.sum() <= 0:
            raise DataError("the training split has no labelled images (all class counts are 0)")
        if multi_label:
            if label_vectors is None:
                raise ValueError("multi-label LabelBank needs the training label vectors")
            self.vectors = (torch.as_tensor(label_vectors) > 0).float()
            members = [torch.nonzero(self.vectors[:, c]).flatten() for c in range(self.num_classes)]
            members.append(torch.nonzero(self.vectors.sum(1) == 0).flatten())  # "no positive label"
            self.member_counts = torch.tensor([len(m) for m in members], dtype=torch.long)
            width = max(1, int(self.member_counts.max()))
            self.members = torch.zeros(len(members), width, dtype=torch.long)
            for c, m in enumerate(members):
                self.members[c, : len(m)] = m

    def prior(self, kind: str) -> torch.Tensor:
        """Class probabilities: "empirical" n_c / Σn, or "uniform" over classes seen in training."""
        present = (self.counts > 0).double()
        p = self.counts if kind == "empirical" else present
        return (p / p.sum()).float()

    def balanced(self, batch: int, prior: str, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:
        if not self.multi_label:
            classes = torch.multinomial(self.prior(prior), batch, replacement=True, generator=generator)
            return classes.to(device)
        if prior == "empirical":
            rows = torch.randint(0, self.vectors.shape[0], (batch,), generator=generator)
            return self.vectors[rows].to(device)
        present = (self.member_counts > 0).float()
        classes = torch.multinomial(present / present.sum(), batch, replacement=True, generator=generator)
        n = self.member_counts[classes]
        pick = (torch.rand(batch, generator=generator) * n).long().clamp(max=n.max() - 1)
        rows = self.members[classes, pick]
        return self.vectors[rows].to(device)

    def negative(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        device = labels.device
        y = labels.detach().cpu()
        b = y.shape[0]
        if not self.multi_label:
            if self.num_classes < 2:
                raise DataError("the overlap regularizer needs at least 2 classes")
            shift = torch.randint(1, self.num_classes, (b,), generator=generator)
            return ((y + shift) % self.num_classes).to(device)
        rows = torch.randint(0, self.vectors.shape[0], (b,), generator=generator)
        neg = self.vectors[rows].clone()
        same = (neg == (y > 0).float()).all(dim=1)
        flip = torch.randint(0, self.num_classes, (b,), generator=generator)
        flipped = (y > 0).float().clone()
        flipped[torch.arange(b), flip] = 1 - flipped[torch.arange(b), flip]
        neg[same] = flipped[same]
        return neg.to(device)
