"""Building MONAI `AutoencoderKL` / `PatchDiscriminator` from the recipe, and the shapes involved."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medlt.recipe.autoencoder import AdversarialConfig, AutoencoderConfig


def autoencoder_image_sizes(recipe) -> list[int]:
    """The spatial sizes the autoencoder sees (those of the diffusion: data.image_size, or (Y, X) of
    the axial slices in CT 2d-axial mode)."""
    from medlt.recipe.checks import diffusion_image_sizes

    return diffusion_image_sizes(recipe)


def latent_sizes(image_sizes: Sequence[int], cfg: AutoencoderConfig) -> list[int]:
    """Spatial sizes of the latents: image size / 2^(len(channels) - 1) per side."""
    f = cfg.downsampling_factor
    return [int(s) // f for s in image_sizes]


def build_autoencoder(cfg: AutoencoderConfig, spatial_dims: int) -> nn.Module:
    from monai.networks.nets import AutoencoderKL

    return AutoencoderKL(
        spatial_dims=spatial_dims, in_channels=cfg.in_channels, out_channels=cfg.in_channels,
        num_res_blocks=cfg.num_res_blocks, channels=tuple(cfg.channels),
        attention_levels=tuple(cfg.attention_levels), latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups, with_encoder_nonlocal_attn=cfg.encoder_attention,
        with_decoder_nonlocal_attn=cfg.decoder_attention, use_checkpoint=cfg.use_checkpoint,
    )


def build_discriminator(cfg: AdversarialConfig, spatial_dims: int, in_channels: int) -> nn.Module:
    from monai.networks.nets import PatchDiscriminator

    return PatchDiscriminator(spatial_dims=spatial_dims, num_layers_d=cfg.num_layers, channels=cfg.channels,
                              in_channels=in_channels, out_channels=1)


class EncodeDecode(nn.Module):
    """One training forward of the autoencoder: encode, draw z = μ + σ·ε with ε from the given
    generator (so a resumed run draws the same ε), decode. Returns (reconstruction, μ, σ). A
    module of its own so DDP sees the whole step as one forward."""

    def __init__(self, autoencoder: nn.Module):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mu, sigma = self.autoencoder.encode(x)
        eps = torch.randn(mu.shape, generator=generator,
                          device=generator.device if generator is not None else mu.device)
        z = mu + eps.to(mu.device, mu.dtype) * sigma
        return self.autoencoder.decode(z), mu, sigma
