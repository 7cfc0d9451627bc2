"""The latent scale factor of latent diffusion (Rombach et al. 2022; MONAI's generative
tutorials): s = 1 / std(z) over training latents, so that s·z has unit standard deviation and the
diffusion's noise schedule fits it. medlt uses the posterior means μ (the latents the diffusion is
trained on) of up to `autoencoder.training.scale_factor_images` training images (the first ones in
dataset order), std over every element (population std)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset


@torch.no_grad()
def encode_means(autoencoder: nn.Module, dataset: Dataset, *, batch_size: int, device: torch.device,
                 limit: int | None = None, desc: str | None = None) -> torch.Tensor:
    """Posterior means μ (N, C_latent, *latent) of the first `limit` items of `dataset`, float32 on CPU."""
    from medlt.cliutils import progress

    n = len(dataset) if limit is None else min(limit, len(dataset))
    loader = DataLoader(Subset(dataset, range(n)), batch_size=batch_size, shuffle=False, num_workers=0)
    was = autoencoder.training
    autoencoder.eval()
    out = []
    try:
        for b in progress(loader, total=len(loader), desc=desc or "encode", unit="batch", disable=desc is None):
            mu, _ = autoencoder.encode(b["image"].to(device).float())
            out.append(mu.float().cpu())
    finally:
        autoencoder.train(was)
    return torch.cat(out) if out else torch.empty(0)


def scale_factor_from_latents(latents: torch.Tensor) -> float:
    """1 / std over every element of `latents` (population std, computed in float64)."""
    std = float(latents.double().std(unbiased=False))
    if not std > 0 or std != std:
        raise ValueError(f"latent std is {std}: cannot scale latents")
    return 1.0 / std
