"""`classifier:` and `evaluate:` sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from medlt.recipe.base import Section


class ClassifierConfig(Section):
    """Downstream classifier (MONAI DenseNet121 / ResNet, 2D or 3D from data.image_size)."""

    architecture: Literal["densenet121", "resnet18", "resnet50"] = "resnet50"
    #: ResNet channel multiplier (1.0 = standard; 0.25 gives a tiny CPU model). Ignored by DenseNet.
    widen_factor: float = 1.0
    #: long-tail baselines (LongTailCXR): plain ERM, class-balanced reweighting (effective number
    #: of samples, Cui et al. 2019), decoupled classifier re-training (cRT: after the main training,
    #: re-train only the final layer for crt_epochs with class-balanced sampling)
    method: Literal["erm", "class-balanced", "crt"] = "erm"
    #: beta of the class-balanced weights w_c ∝ (1 − β) / (1 − β^{n_c})
    class_balanced_beta: float = 0.9999
    epochs: int = 60
    per_rank_batch_size: int = 256
    lr: float = 1e-4
    #: Adam weight decay (LongTailCXR: none)
    weight_decay: float = 0.0
    crt_epochs: int = 10
    crt_lr: float | None = None
    #: stop a stage (main, cRT) after this many epochs without a better val balanced accuracy; the
    #: best checkpoint is kept. None = train every epoch. LongTailCXR: 15.
    early_stopping_patience: int | None = Field(15, ge=1)
    #: training augmentation (the classifier's own; data.augment applies to the diffusion only):
    #: random rotation, uniform in ±augment_rotation_deg degrees (0 = off; LongTailCXR: 15) ...
    augment_rotation_deg: float = Field(15.0, ge=0.0, le=180.0)
    #: ... and a random left-right flip with probability 0.5. Off by default (LongTailCXR flips):
    #: chest anatomy is lateralised and this classifier is also the default feature extractor and
    #: reference classifier, which must not be blind to mirrored anatomy (see docs/evaluation.md).
    augment_flip: bool = False
    #: initial weights from a local file (state dict of this architecture's backbone, of a medlt
    #: classifier, or a medlt checkpoint; torch.load weights_only); nothing is downloaded. None =
    #: random initialisation.
    init_weights: Path | None = None
    #: multi-label decision threshold on the sigmoid probabilities
    threshold: float = 0.5
    device: str = "auto"


class EvaluateConfig(Section):
    #: bootstrap resamples for the 95% confidence intervals of the classification metrics
    #: (stratified by class over the test images, seeded); 0 = no intervals
    bootstrap_resamples: int = Field(1000, ge=0)
    #: memorization: a synthetic image is a near-copy when its nearest real training image is
    #: closer than this percentile of real-to-real nearest distances
    memorization_percentile: float = 5.0
    memorization_pairs_saved: int = 8
    kid_subset_size: int = 100
    kid_num_subsets: int = 50
    #: per scope, at most this many feature vectors are kept (uniform reservoir) for KID
    kid_reservoir: int = 1000
    ms_ssim_max_pairs: int = 200
    #: MS-SSIM settings for small images (MONAI's default needs > 160 px per side)
    ms_ssim_kernel_size: int = 3
    ms_ssim_weights: list[float] = Field(default_factory=lambda: [0.3, 0.4, 0.3])
    batch_size: int = 64
    #: real reference for FID/KID/memorization: at most this many real training images (seeded
    #: uniform subset); None = the whole training split
    max_real_reference: int | None = None
    #: images per class in the report's sample grids (real beside synthetic)
    grid_images_per_class: int = 4
    #: test roles scored by `medlt evaluate` (absent roles, e.g. test_longtail: null, are skipped)
    roles: list[str] = Field(default_factory=lambda: ["test", "test_longtail"])
