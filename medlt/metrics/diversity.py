"""Diversity: mean pairwise MS-SSIM within a class of synthetic images (lower = more diverse),
with MONAI's MultiScaleSSIMMetric (Gaussian window, σ = 1.5, data_range = 2 for model space [-1, 1]).

Settings follow the image size (`ms_ssim_settings`): the standard MS-SSIM (Wang et al. 2003) uses
an 11-px window and 5 scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). MONAI refuses
a side s unless s // (L − 1)² > k − 1 for L scales and window k (5 scales, k = 11: s ≥ 176), and the
window must fit the coarsest scale (s // 2^(L−1) ≥ k). Below that, the window stays 11 px and the
number of scales drops to the largest L that fits, with the first L standard weights renormalised
to sum 1; only when not even one scale holds an 11-px window does the window shrink (largest odd
size that fits). Recipe keys `evaluate.ms_ssim_kernel_size` / `ms_ssim_weights` override either
choice (None = automatic). The settings used are part of the result. Pairs are drawn at random
(seeded), at most `max_pairs` per class, so cost is bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

STANDARD_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
STANDARD_KERNEL = 11


def _fits(side: int, scales: int, kernel: int) -> bool:
    return side // max(1, scales - 1) ** 2 > kernel - 1 and side // 2 ** (scales - 1) >= kernel


def ms_ssim_settings(spatial_shape: Sequence[int], kernel_size: int | None = None,
                     weights: Sequence[float] | None = None) -> dict:
    """MS-SSIM window and scale weights for images of `spatial_shape` (rule in the module doc).
    Raises ValueError when explicit settings cannot work at this size."""
    side = int(min(spatial_shape))
    auto_k, auto_w = kernel_size is None, weights is None
    if not auto_w:
        weights = tuple(float(w) for w in weights)
    if auto_k and auto_w:
        for scales in range(5, 0, -1):
            if _fits(side, scales, STANDARD_KERNEL):
                kernel_size = STANDARD_KERNEL
                break
        else:
            scales = 1
            kernel_size = next((k for k in range(STANDARD_KERNEL, 2, -2) if _fits(side, 1, k)), None)
        w = STANDARD_WEIGHTS[:scales]
        weights = tuple(x / sum(w) for x in w) if scales < 5 else STANDARD_WEIGHTS
    elif auto_k:
        kernel_size = next((k for k in range(STANDARD_KERNEL, 2, -2) if _fits(side, len(weights), k)), None)
    elif auto_w:
        scales = next((L for L in range(5, 0, -1) if _fits(side, L, kernel_size)), None)
        if scales is not None:
            w = STANDARD_WEIGHTS[:scales]
            weights = tuple(x / sum(w) for x in w) if scales < 5 else STANDARD_WEIGHTS
    if kernel_size is None or weights is None or not _fits(side, len(weights), kernel_size):
        raise ValueError(f"MS-SSIM: images with a smallest side of {side} px are too small for kernel "
                         f"{kernel_size} and {len(weights) if weights else '?'} scales (evaluate.ms_ssim_kernel_size "
                         f"/ evaluate.ms_ssim_weights; null = automatic)")
    standard = kernel_size == STANDARD_KERNEL and tuple(weights) == STANDARD_WEIGHTS
    return {"kernel_size": int(kernel_size), "kernel_sigma": 1.5, "weights": [float(w) for w in weights],
            "scales": len(weights), "smallest_side_px": side, "standard_ms_ssim": standard,
            "chosen": "automatic" if (auto_k and auto_w) else "recipe" if not (auto_k or auto_w) else "recipe+automatic"}


class ClassDiversity:
    """Keep up to `per_class_capacity` images per class (first come), then score random pairs."""

    def __init__(self, class_names: Sequence[str], *, kernel_size: int | None = None,
                 weights: Sequence[float] | None = None, max_pairs: int = 200,
                 per_class_capacity: int = 64, seed: int = 0):
        self.class_names = list(class_names)
        self.kernel_size, self.weights = kernel_size, (tuple(weights) if weights is not None else None)
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
        shape = next((b[0].shape[1:] for b in self._imgs.values() if b), None)
        settings = (ms_ssim_settings(shape, self.kernel_size, self.weights) if shape is not None
                    else {"kernel_size": self.kernel_size, "weights": list(self.weights or ())})
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
                                          kernel_size=settings["kernel_size"], kernel_sigma=1.5,
                                          weights=settings["weights"])
            vals = metric(x[ii], x[jj]).flatten()
            per_class[name] = float(vals.mean())
            n_pairs[name] = int(ii.numel())
        scored = [v for v in per_class.values() if v is not None]
        return {
            "definition": "mean pairwise MS-SSIM within each class of synthetic images (lower = more diverse)",
            "settings": {**settings, "data_range": 2.0, "max_pairs_per_class": self.max_pairs},
            "per_class_ms_ssim": per_class,
            "per_class_pairs": n_pairs,
            "mean_ms_ssim": (sum(scored) / len(scored)) if scored else None,
        }
