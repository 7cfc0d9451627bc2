"""`model:`, `diffusion:`, `regularizers:`, `training:` and `sampling:` sections."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from medlt.recipe.autoencoder import LatentConfig
from medlt.recipe.base import (
    Count,
    KeyProblem,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    Probability,
    Section,
)

#: a finite noise level σ/α >= 0 (no inf, no nan)
NoiseLevel = Annotated[float, Field(ge=0, allow_inf_nan=False)]

#: where training runs: "auto" (CUDA when available), "cpu" or "cuda" (torchrun: the local rank's GPU)
Device = Literal["auto", "cpu", "cuda"]


class ModelConfig(Section):
    """MONAI DiffusionModelUNet sizes."""

    spatial_dims: Literal[2, 3] = 2
    in_channels: Count = 1
    #: channels per resolution level; the UNet halves the image size len(channels) - 1 times, so
    #: data.image_size must be divisible by 2^(len(channels) - 1). Each a multiple of norm_num_groups.
    channels: list[Count] = Field(default_factory=lambda: [128, 256, 256, 512], min_length=1)
    #: one flag per level (same length as channels)
    attention_levels: list[bool] = Field(default_factory=lambda: [False, False, True, True])
    num_res_blocks: Count = 2
    #: channels per attention head; divides the channels of every attention level
    num_head_channels: Count = 64
    norm_num_groups: Count = 32
    #: how a multi-hot label vector conditions the net: added to the time embedding; added and also
    #: scaling/shifting every residual block's norm (adaptive-norm); or MONAI's cross-attention context
    multi_label_conditioning: Literal["time-embedding", "adaptive-norm", "cross-attention"] = "adaptive-norm"
    #: width of the context tokens in the cross-attention variant
    cross_attention_dim: Count = 64
    #: latent diffusion: {autoencoder: RUN} of `medlt train-autoencoder`; the UNet then sees latents
    #: (in_channels = the autoencoder's latent_channels, size = image size / its downsampling).
    #: None = pixel space
    latent: LatentConfig | None = None

    @model_validator(mode="after")
    def _unet_shapes(self):
        if len(self.attention_levels) != len(self.channels):
            raise KeyProblem("attention_levels", f"needs one flag per level of model.channels "
                             f"({len(self.channels)}), got {len(self.attention_levels)}")
        bad = [c for c in self.channels if c % self.norm_num_groups]
        if bad:
            raise KeyProblem("channels", f"every value must be a multiple of model.norm_num_groups="
                             f"{self.norm_num_groups} (got {list(self.channels)})")
        bad = [c for c, a in zip(self.channels, self.attention_levels, strict=True)
               if a and c % self.num_head_channels]
        if bad:
            raise KeyProblem("num_head_channels", f"must divide the channels of every attention level "
                             f"(got {self.num_head_channels} for {bad})")
        return self

    @property
    def downsampling_factor(self) -> int:
        """How many times smaller the UNet's coarsest level is than its input, per side."""
        return 2 ** (len(self.channels) - 1)


class RFlowConfig(Section):
    """Rectified flow (MONAI `RFlowScheduler`): how training draws the flow time t in [0, T]
    (t = T is pure noise, x_t = (1 − t/T)·x0 + (t/T)·ε)."""

    #: uniform: t/T ~ U(0, 1); logit-normal: t/T = sigmoid(z), z ~ N(logit_normal_loc, logit_normal_scale²)
    sample_method: Literal["uniform", "logit-normal"] = "uniform"
    logit_normal_loc: float = Field(0.0, ge=-10.0, le=10.0)
    logit_normal_scale: PositiveFloat = 1.0
    #: integer flow times (MONAI's use_discrete_timesteps)
    discrete_timesteps: bool = True
    #: resolution shift of t towards noise for images larger than base_img_size_numel
    #: (MONAI's use_timestep_transform; training and sampling)
    timestep_transform: bool = False
    transform_scale: PositiveFloat = 1.0
    #: reference number of pixels/voxels (H·W[·D]) of the timestep transform
    base_img_size_numel: Count = 32 * 32 * 32


#: samplers that fit each objective (sampling.sampler)
SAMPLERS_BY_OBJECTIVE = {"epsilon": ("ddim", "ddpm", "dpm++"), "rflow": ("rflow",)}


class DiffusionConfig(Section):
    #: epsilon: the network predicts the noise ε of x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε (DDPM schedule);
    #: rflow: rectified flow, the network predicts the velocity v = x0 − ε of
    #: x_t = (1 − t/T)·x0 + (t/T)·ε (MONAI RFlowScheduler; sample with sampling.sampler: rflow)
    objective: Literal["epsilon", "rflow"] = "epsilon"
    #: rectified-flow time sampling (objective rflow only)
    rflow: RFlowConfig = Field(default_factory=RFlowConfig)
    num_train_timesteps: Count = 1000
    schedule: Literal["linear_beta", "scaled_linear_beta", "cosine"] = "linear_beta"
    #: linear schedules: 0 < beta_start < beta_end < 1
    beta_start: float = Field(1e-4, gt=0.0, lt=1.0)
    beta_end: float = Field(0.02, gt=0.0, lt=1.0)
    prediction_type: Literal["epsilon"] = "epsilon"
    #: classifier-free guidance: per-sample probability of dropping the condition in training
    label_drop_prob: float = Field(0.1, ge=0.0, le=1.0)
    #: DDPM sampling clamps the predicted x0 to [-1, 1] (model space)
    clip_sample: bool = True

    @model_validator(mode="after")
    def _beta_order(self):
        if self.schedule != "cosine" and not self.beta_start < self.beta_end:
            raise KeyProblem("beta_end", f"must be > diffusion.beta_start={self.beta_start} "
                             f"(got {self.beta_end})")
        return self


#: a regularizer's weight when the recipe gives none (the components' own defaults agree; tested)
DEFAULT_REGULARIZER_WEIGHTS = {"cbdm": 1.0, "overlap": 0.1, "ccua": 1.0, "coral": 0.05, "t2h": 1.0}


class RegularizerConfig(Section):
    """One long-tail regularizer: registered `name`, its `weight` (>= 0) and its own options.

    Without `weight` the component's default applies: cbdm 1.0, overlap 0.1 (its push is bounded by
    the margin but competes with the denoising loss; 0.1 keeps it a correction), ccua 1.0, coral 0.05
    (the official τ_s·λ = 0.1·0.5), t2h 1 (it replaces the target and adds no term: only 1 is valid)."""

    name: str
    weight: NonNegativeFloat = 1.0
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_weight(cls, data: Any) -> Any:
        if isinstance(data, dict) and "weight" not in data and isinstance(data.get("name"), str):
            data = {**data, "weight": DEFAULT_REGULARIZER_WEIGHTS.get(data["name"], 1.0)}
        return data


class TrainingConfig(Section):
    max_steps: Count = 300_000
    per_rank_batch_size: Count = 64
    #: AdamW learning rate (>= 0; 0 keeps the weights fixed, e.g. to check a fine-tuning source)
    lr: NonNegativeFloat = 2e-4
    weight_decay: NonNegativeFloat = 0.0
    #: linear warm-up length; 0 = none
    warmup_steps: NonNegativeInt = 5000
    grad_clip_norm: PositiveFloat = 1.0
    #: 0 <= decay < 1
    ema_decay: float = Field(0.9999, ge=0.0, lt=1.0)
    #: "auto": bf16 autocast on CUDA, fp32 on CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    checkpoint_every_steps: Count = 5000
    #: a sample grid PNG every N steps and at the end; 0 = no sample grids
    sample_grid_every_steps: NonNegativeInt = 10000
    log_every_steps: Count = 50
    #: fine-tuning from a checkpoint (CBDM then draws y' uniformly)
    init_checkpoint: str | None = None
    #: samples per class (columns) in the sample grid PNG
    sample_grid_per_class: Count = 4
    #: device: "auto" (CUDA when available), "cpu", "cuda"
    device: Device = "auto"
    #: class-balanced batch resampling of the diffusion's training set (CCUA): draw a class with
    #: probability ∝ n_c^q (q = 0.5 square-root, 0 uniform, 1 natural), then an image of it; None =
    #: plain shuffling. Only the diffusion reads it: the downstream classifier's main stage always
    #: trains on the natural distribution.
    class_balanced_q: Probability | None = None


class SamplingConfig(Section):
    #: epsilon objective: ddim (η = 0), ddpm (ancestral) or dpm++ (DPM-Solver++ 2M, needs the
    #: fast-samplers extra); rflow objective: rflow (Euler steps of the flow ODE)
    sampler: Literal["ddim", "ddpm", "dpm++", "rflow"] = "ddim"
    #: at most diffusion.num_train_timesteps
    num_inference_steps: Count = 50
    #: classifier-free guidance ω >= 0 (0 = conditional only)
    guidance_scale: NonNegativeFloat = 0.8
    batch_size: Count = 64
    #: how ddim / dpm++ (and ddpm) use the predicted x̂0 = (x_t − σ_t·ε̃)/α_t when
    #: diffusion.clip_sample is true (docs/methods.md): legacy = clamp x̂0 to [−1, 1] but step with the
    #: unclamped ε̃ (medlt's behaviour so far); consistent = clamp x̂0 and step with the ε re-derived
    #: from it; dynamic = as consistent with dynamic thresholding of x̂0 (dynamic_threshold_quantile);
    #: none = no clamp. consistent and dynamic need diffusion.objective epsilon and
    #: diffusion.clip_sample true. A run-time setting like guidance_scale
    x0_clip: Literal["legacy", "consistent", "dynamic", "none"] = "legacy"
    #: x0_clip dynamic only: per sample, x̂0 is divided by s = max(this quantile of |x̂0|, 1) after
    #: clamping it to [−s, s]; 0 < p <= 1
    dynamic_threshold_quantile: float = Field(0.995, gt=0.0, le=1.0)
    #: guidance rescale φ in [0, 1]: the guided prediction rescaled to the standard deviation of the
    #: conditional one, mixed φ·rescaled + (1 − φ)·guided; 0 = off (plain classifier-free guidance)
    guidance_rescale: Probability = 0.0
    #: guidance only at noise levels lo < σ_t/α_t <= hi, the conditional prediction alone elsewhere:
    #: [lo, hi] (hi null = no upper end) or null = at every step. σ_t/α_t = √((1 − ᾱ_t)/ᾱ_t) (epsilon),
    #: s/(1 − s) with s = t/T (rflow): the noise level of x_t/α_t = x0 + (σ_t/α_t)·ε, EDM's σ
    guidance_interval: tuple[NoiseLevel, NoiseLevel | None] | None = None

    @model_validator(mode="after")
    def _interval_order(self):
        iv = self.guidance_interval
        if iv is not None and iv[1] is not None and not iv[0] < iv[1]:
            raise KeyProblem("guidance_interval", f"needs lo < hi (noise levels σ/α), got {list(iv)}")
        return self


def check_sampling_fits_model(recipe) -> None:
    """KeyProblem (recipe-level key) for sampling options that do not apply to the recipe's model."""
    s, d = recipe.sampling, recipe.diffusion
    if s.x0_clip in ("consistent", "dynamic"):
        if d.objective == "rflow":
            raise KeyProblem("sampling.x0_clip", f"'{s.x0_clip}' needs diffusion.objective=epsilon: the rflow "
                             f"sampler never clamps x̂0 (use legacy or none)")
        if not d.clip_sample:
            raise KeyProblem("sampling.x0_clip", f"'{s.x0_clip}' clamps x̂0, but diffusion.clip_sample is false "
                             f"(x̂0 is not bounded in [-1, 1], e.g. latents): use legacy or none")
    if recipe.model.latent is not None:
        for key, off in (("guidance_rescale", s.guidance_rescale == 0), ("guidance_interval", s.guidance_interval is None)):
            if not off:
                raise KeyProblem(f"sampling.{key}", "is not applied by latent-diffusion sampling yet (model.latent "
                                 "is set): leave it at its default")
