"""`model:`, `diffusion:`, `regularizers:`, `training:` and `sampling:` sections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from medlt.recipe.base import Section


class ModelConfig(Section):
    """MONAI DiffusionModelUNet sizes."""

    spatial_dims: Literal[2, 3] = 2
    in_channels: int = 1
    channels: list[int] = Field(default_factory=lambda: [128, 256, 256, 512])
    attention_levels: list[bool] = Field(default_factory=lambda: [False, False, True, True])
    num_res_blocks: int = 2
    num_head_channels: int = 64
    norm_num_groups: int = 32
    #: how a multi-hot label vector conditions the net: added to the time embedding, or
    #: MONAI's cross-attention context
    multi_label_conditioning: Literal["time-embedding", "cross-attention"] = "time-embedding"
    #: width of the context tokens in the cross-attention variant
    cross_attention_dim: int = 64


class DiffusionConfig(Section):
    num_train_timesteps: int = 1000
    schedule: Literal["linear_beta", "scaled_linear_beta", "cosine"] = "linear_beta"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: Literal["epsilon"] = "epsilon"
    #: classifier-free guidance: per-sample probability of dropping the condition in training
    label_drop_prob: float = Field(0.1, ge=0.0, le=1.0)
    #: DDPM sampling clamps the predicted x0 to [-1, 1] (model space)
    clip_sample: bool = True


class RegularizerConfig(Section):
    """One long-tail regularizer: registered `name`, its `weight` and its own options."""

    name: str
    weight: float = 1.0
    options: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(Section):
    max_steps: int = 300_000
    per_rank_batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 5000
    grad_clip_norm: float = 1.0
    ema_decay: float = 0.9999
    #: "auto": bf16 autocast on CUDA, fp32 on CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    checkpoint_every_steps: int = 5000
    sample_grid_every_steps: int = 10000
    log_every_steps: int = 50
    #: fine-tuning from a checkpoint (CBDM then draws y' uniformly)
    init_checkpoint: str | None = None
    #: samples per class (columns) in the sample grid PNG
    sample_grid_per_class: int = 4
    #: device: "auto" (CUDA when available), "cpu", "cuda"
    device: str = "auto"
    #: class-balanced batch resampling of the diffusion's training set (CCUA): draw a class with
    #: probability ∝ n_c^q (q = 0.5 square-root, 0 uniform, 1 natural), then an image of it; None =
    #: plain shuffling. Only the diffusion reads it: the downstream classifier's main stage always
    #: trains on the natural distribution.
    class_balanced_q: float | None = None


class SamplingConfig(Section):
    sampler: Literal["ddim", "ddpm"] = "ddim"
    num_inference_steps: int = 50
    guidance_scale: float = 0.8
    batch_size: int = 64
