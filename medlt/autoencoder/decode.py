"""Decoding latents to images: the whole latent at once ("plain"), or overlapping latent tiles
decoded one by one and blended with Gaussian weights ("sliding-window", MONAI
`SlidingWindowInferer`, as MAISI decodes large CT volumes). The decoder upsamples each tile by the
autoencoder's factor; MONAI's sliding-window inference places each decoded tile at the matching
(scaled) position of the output. A tile's border is decoded without its neighbours' context, so the
result differs from a plain decode near tile borders; more overlap makes it smaller. A decoder with
global attention (autoencoder.decoder_attention) sees only its tile: turn that off for tiled use."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def decode_plain(autoencoder: nn.Module, z: torch.Tensor) -> torch.Tensor:
    return autoencoder.decode(z)


def decode_sliding_window(autoencoder: nn.Module, z: torch.Tensor, tile: Sequence[int] | None = None,
                          overlap: float = 0.5, sw_batch_size: int = 1) -> torch.Tensor:
    """Decode `z` (B, C, *latent) in tiles of `tile` latent voxels (None: half the latent per side)."""
    from monai.inferers import SlidingWindowInferer

    spatial = z.shape[2:]
    roi = [max(1, s // 2) for s in spatial] if tile is None else [min(int(t), s) for t, s in zip(tile, spatial,
                                                                                                   strict=True)]
    inferer = SlidingWindowInferer(roi_size=roi, sw_batch_size=sw_batch_size, overlap=overlap, mode="gaussian",
                                   progress=False)
    return inferer(z, autoencoder.decode)


@torch.no_grad()
def decode(autoencoder: nn.Module, z: torch.Tensor, *, mode: str = "plain", tile: Sequence[int] | None = None,
           overlap: float = 0.5) -> torch.Tensor:
    if mode == "plain":
        return decode_plain(autoencoder, z)
    if mode == "sliding-window":
        if tile is not None and len(tile) != z.dim() - 2:
            raise ValueError(f"autoencoder.decode_tile has {len(tile)} sizes for {z.dim() - 2}D latents")
        return decode_sliding_window(autoencoder, z, tile, overlap)
    raise ValueError(f"unknown decode mode '{mode}'")
