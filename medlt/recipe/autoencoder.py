"""`autoencoder:` section (MONAI `AutoencoderKL` for latent diffusion, `medlt train-autoencoder`) and
`model.latent` (a diffusion recipe's pointer to a trained autoencoder run).

The autoencoder's spatial dimensionality follows the data (2 sizes in data.image_size: 2D, 3: 3D;
CT 2d-axial: 2D), so it has no spatial_dims key. It halves the image len(channels) - 1 times:
latent size = image size / 2^(len(channels) - 1), latent_channels channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from medlt.recipe.base import Count, KeyProblem, NonNegativeFloat, NonNegativeInt, PositiveFloat, Section


class AdversarialConfig(Section):
    """MONAI `PatchDiscriminator` + `PatchAdversarialLoss` (least squares) term of the generator
    loss, switched on after `start_step` steps of L1 + KL only."""

    #: weight of the adversarial term in the generator loss (MONAI tutorials: 0.01)
    weight: PositiveFloat = 0.01
    #: steps before the discriminator and the adversarial term start (>= 0)
    start_step: NonNegativeInt = 0
    #: width of the discriminator's first layer (doubles per layer)
    channels: Count = 64
    #: strided convolution layers of the discriminator
    num_layers: int = Field(3, ge=1, le=6)
    #: discriminator Adam learning rate
    lr: PositiveFloat = 1e-4


class PerceptualConfig(Section):
    """Perceptual loss (MONAI `PerceptualLoss`, torchvision ResNet-50 features; 3D: 2.5D slices)
    from a LOCAL weights file only (nothing is downloaded). Needs torchvision."""

    #: a torchvision ResNet-50 state dict (.pth) on disk
    weights: Path
    #: key of the state dict inside the file (None: the file is the state dict)
    state_dict_key: str | None = None
    #: weight of the perceptual term (MONAI tutorials: 0.001)
    weight: PositiveFloat = 0.001


class AutoencoderTrainingConfig(Section):
    max_steps: Count = 100_000
    per_rank_batch_size: Count = 8
    #: Adam learning rate of the autoencoder (>= 0)
    lr: NonNegativeFloat = 1e-4
    #: linear warm-up length; 0 = none
    warmup_steps: NonNegativeInt = 500
    grad_clip_norm: PositiveFloat = 1.0
    #: EMA of the weights (0 <= decay < 1); None = no EMA (latents and evaluation use the weights)
    ema_decay: float | None = Field(None, ge=0.0, lt=1.0)
    #: "auto": bf16 autocast on CUDA, fp32 on CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    checkpoint_every_steps: Count = 2000
    #: a reconstruction grid PNG every N steps and at the end; 0 = none
    recon_grid_every_steps: NonNegativeInt = 2000
    #: images in the reconstruction grid (originals above, reconstructions below)
    recon_grid_images: Count = 8
    log_every_steps: Count = 50
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: training images whose latents (posterior means) give the latent scale factor 1 / std
    scale_factor_images: Count = 256


class AutoencoderEvaluateConfig(Section):
    #: worst reconstructions (lowest PSNR) saved per class
    worst_per_class: NonNegativeInt = 3
    batch_size: Count = 8


class AutoencoderConfig(Section):
    """MONAI AutoencoderKL sizes and its losses (L1 + kl_weight·KL [+ adversarial] [+ perceptual])."""

    in_channels: Count = 1
    #: channels per level; the encoder halves the image len(channels) - 1 times. Each a multiple of
    #: norm_num_groups
    channels: list[Count] = Field(default_factory=lambda: [64, 128, 256], min_length=1, max_length=6)
    #: one flag per level (same length as channels)
    attention_levels: list[bool] = Field(default_factory=lambda: [False, False, False])
    num_res_blocks: Count = 2
    latent_channels: Count = 4
    norm_num_groups: Count = 32
    #: self-attention in the encoder / decoder middle block (global: off for tiled 3D decoding)
    encoder_attention: bool = True
    decoder_attention: bool = True
    #: gradient checkpointing (less memory, more compute)
    use_checkpoint: bool = False
    #: weight of the KL term (MONAI tutorials: 1e-6)
    kl_weight: NonNegativeFloat = 1e-6
    adversarial: AdversarialConfig | None = None
    perceptual: PerceptualConfig | None = None
    training: AutoencoderTrainingConfig = Field(default_factory=AutoencoderTrainingConfig)
    evaluate: AutoencoderEvaluateConfig = Field(default_factory=AutoencoderEvaluateConfig)
    #: decoding of latents (sample / synth): "plain" decodes the whole latent at once; "sliding-window"
    #: decodes overlapping latent tiles (MONAI SlidingWindowInferer, Gaussian blending), for large 3D
    #: volumes
    decode: Literal["plain", "sliding-window"] = "plain"
    #: sliding-window tile in latent voxels per side (one per spatial dim), None = half the latent
    decode_tile: list[Count] | None = Field(None, min_length=2, max_length=3)
    #: sliding-window overlap fraction of a tile, 0 <= overlap < 1
    decode_overlap: float = Field(0.5, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _shapes(self):
        if len(self.attention_levels) != len(self.channels):
            raise KeyProblem("attention_levels", f"needs one flag per level of autoencoder.channels "
                             f"({len(self.channels)}), got {len(self.attention_levels)}")
        bad = [c for c in self.channels if c % self.norm_num_groups]
        if bad:
            raise KeyProblem("channels", f"every value must be a multiple of autoencoder.norm_num_groups="
                             f"{self.norm_num_groups} (got {list(self.channels)})")
        return self

    @property
    def downsampling_factor(self) -> int:
        """Image size / latent size, per side."""
        return 2 ** (len(self.channels) - 1)


class LatentConfig(Section):
    """Latent diffusion: the UNet diffuses the latents of this trained autoencoder."""

    #: a `medlt train-autoencoder` run folder (or its checkpoints/last.pt)
    autoencoder: Path


def require_autoencoder_section(recipe, source: str = "<recipe>") -> None:
    """RecipeError unless the recipe has an `autoencoder:` section (in its file or through --set):
    without one, train-autoencoder would quietly train the defaults (64/128/256 channels,
    100,000 steps, the first checkpoint at step 2,000)."""
    from medlt.errors import RecipeError

    if "autoencoder" not in recipe.model_fields_set:
        raise RecipeError(f"{source}: recipe key 'autoencoder': missing; train-autoencoder needs an autoencoder: "
                          f"section with at least its sizes and step count (e.g. channels, latent_channels, "
                          f"training.max_steps; see recipes/phantom/nih_cxr_lt_latent.yaml)")


def check_latent_recipe(recipe) -> None:
    """Cross-section rules of latent diffusion (model.latent set): latents live outside [-1, 1], so
    the samplers must not clamp x0 to it, and latents are cached, so no random augmentation."""
    if recipe.model.latent is None:
        return
    if recipe.diffusion.clip_sample:
        raise KeyProblem("diffusion.clip_sample", "must be false with model.latent (latents are scaled to unit "
                         "standard deviation, not to [-1, 1])")
    if recipe.data.augment:
        raise KeyProblem("data.augment", "must be false with model.latent (the diffusion trains on cached "
                         "latents of the unaugmented images)")
