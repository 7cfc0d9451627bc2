"""Diversity: mean pairwise MS-SSIM within a class of synthetic images (lower = more diverse),
with MONAI's MultiScaleSSIMMetric.

Small images need small settings: MONAI's default (11-px kernel, 5 scales) needs sides
> 160 px. medlt's defaults (recipe `evaluate.ms_ssim_kernel_size: 3`, `ms_ssim_weights:
[0.3, 0.4, 0.3]` = 3 scales) work from 16 px up (32×32 CXR phantoms, 32×32×16 CT phantoms);
data_range = 2 because images are in model space [-1, 1]. Pairs are drawn at random (seeded),
at most `max_pairs` per class, so cost is bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ClassDiversity:
    """Keep up to `per_class_capacity` images per class (first come), then score random pairs."""

    def __init__(self, class_names: Sequence[str], *, kernel_size: int = 3,
                 weights: Sequence[float] = (0.3, 0.4, 0.3), max_pairs: int = 200,
                 per_class_capacity: int = 64, seed: int = 0):
        self.class_names = list(class_names)
        self.kernel_size, self.weights = kernel_size, tuple(weights)
        self.max_pairs, self.capacity, self.seed = max_pairs, per_class_capacity, seed
        self._imgs: dict[int, list[torch.Tensor]] = {}

    def update(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        labels = torch.as_tensor(labels)
        for img, lab in zip(images, labels, strict=True):
            classes = [int(lab)] if lab.ndim == 0 else [int(c) for c in torch.nonzero(lab > 0.5).flatten()]
            for c in classes:
                bucket = self._imgs.setdefault(c, [])
                if len(bucket) < self.capacity:
                    bucket.append(img.detach().float().cpu())

    def compute(self) -> dict:
        from monai.metrics import MultiScaleSSIMMetric

        per_class: dict[str, float | None] = {}
        n_pairs: dict[str, int] = {}
        gen = torch.Generator().manual_seed(self.seed)
        for c, name in enumerate(self.class_names):
            imgs = self._imgs.get(c, [])
            if len(imgs) < 2:
                per_class[name], n_pairs[name] = None, 0
                continue
            x = torch.stack(imgs)
            n = x.shape[0]
            ii, jj = torch.triu_indices(n, n, offset=1)
            if ii.numel() > self.max_pairs:
                pick = torch.randperm(ii.numel(), generator=gen)[: self.max_pairs]
                ii, jj = ii[pick], jj[pick]
            metric = MultiScaleSSIMMetric(spatial_dims=x.ndim - 2, data_range=2.0,
                                          kernel_size=self.kernel_size, weights=self.weights)
            vals = metric(x[ii], x[jj]).flatten()
            per_class[name] = float(vals.mean())
            n_pairs[name] = int(ii.numel())
        scored = [v for v in per_class.values() if v is not None]
        return {
            "definition": "mean pairwise MS-SSIM within each class of synthetic images (lower = more diverse)",
            "settings": {"kernel_size": self.kernel_size, "weights": list(self.weights),
                         "data_range": 2.0, "max_pairs_per_class": self.max_pairs},
            "per_class_ms_ssim": per_class,
            "per_class_pairs": n_pairs,
            "mean_ms_ssim": (sum(scored) / len(scored)) if scored else None,
        }
