"""`classifier:` and `evaluate:` sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from medlt.recipe.base import (
    Count,
    KeyProblem,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    Probability,
    Section,
)
from medlt.recipe.diffusion import Device


class ClassifierConfig(Section):
    """Downstream classifier (MONAI DenseNet121 / ResNet, 2D or 3D from data.image_size)."""

    architecture: Literal["densenet121", "resnet18", "resnet50"] = "resnet50"
    #: ResNet channel multiplier (1.0 = standard; 0.25 gives a tiny CPU model). Ignored by DenseNet.
    widen_factor: PositiveFloat = 1.0
    #: long-tail baselines (LongTailCXR): plain ERM, class-balanced reweighting (effective number
    #: of samples, Cui et al. 2019), decoupled classifier re-training (cRT: after the main training,
    #: re-train only the final layer for crt_epochs with class-balanced sampling), and logit
    #: adjustment (Menon et al. 2021: train on f(x) + τ·log π with π the class prior of the *real*
    #: training rows, predict with f alone; single-label only)
    method: Literal["erm", "class-balanced", "crt", "logit-adjusted"] = "erm"
    #: τ of method logit-adjusted (Menon et al.: 1); read by that method only
    logit_adjustment_tau: PositiveFloat = 1.0
    #: loss weight of the training rows whose manifest `source` is synthetic (real and copy rows
    #: weigh 1): the loss is the weighted mean with per-row weight s_i·w_{y_i} (w: class weights of
    #: method class-balanced, else 1; see medlt.classify.losses). 1 = synthetic rows count like real ones.
    synthetic_loss_weight: PositiveFloat = 1.0
    #: a last stage on the REAL rows of the training set only (source real; copy and synthetic rows
    #: are left out, so every arm of a benchmark finishes on the same images), from the best main-stage
    #: weights: none; crt-real = re-train the final layer alone with class-balanced sampling (cRT on
    #: real images); finetune-real = fine-tune the whole network with the main stage's loss. Early
    #: stopping as in the main stage; best.pt is the finishing stage's best epoch.
    finish: Literal["none", "crt-real", "finetune-real"] = "none"
    finish_epochs: Count = 10
    #: learning rate of the finishing stage; None = classifier.lr
    finish_lr: PositiveFloat | None = None
    #: beta of the class-balanced weights w_c ∝ (1 − β) / (1 − β^{n_c})
    class_balanced_beta: float = Field(0.9999, ge=0.0, lt=1.0)
    epochs: Count = 60
    per_rank_batch_size: Count = 256
    lr: PositiveFloat = 1e-4
    #: Adam weight decay (LongTailCXR: none)
    weight_decay: NonNegativeFloat = 0.0
    crt_epochs: Count = 10
    #: learning rate of the cRT stage; None = classifier.lr
    crt_lr: PositiveFloat | None = None
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
    threshold: Probability = 0.5
    device: Device = "auto"

    @model_validator(mode="after")
    def _one_second_stage(self):
        if self.method == "crt" and self.finish != "none":
            raise KeyProblem("finish", f"'{self.finish}' cannot follow method 'crt' (cRT's stage 2 re-trains on "
                             f"every training row); use method erm, class-balanced or logit-adjusted with "
                             f"finish crt-real")
        return self


class EvaluateConfig(Section):
    #: bootstrap resamples for the 95% confidence intervals of the classification metrics
    #: (stratified by class over the test images, seeded); 0 = no intervals
    bootstrap_resamples: int = Field(1000, ge=0)
    #: memorization: a synthetic image s is flagged as a near-copy when d(s, r*) / d(r*, nearest
    #: other real training image) <= this ratio (r* = the real image nearest to s; exact copies are
    #: always flagged; see docs/evaluation.md)
    memorization_ratio_threshold: float = Field(0.5, gt=0.0)
    #: class fidelity: a class whose real test images the judge (reference classifier) recalls
    #: below this share is marked "judge cannot recognise this class" and enters no fidelity mean
    judge_min_real_recall: float = Field(0.5, ge=0.0, le=1.0)
    #: closest (synthetic, real) pairs saved as images; 0 = none
    memorization_pairs_saved: NonNegativeInt = 8
    #: KID: feature vectors per subset (>= 2) and number of subsets
    kid_subset_size: int = Field(100, ge=2)
    kid_num_subsets: Count = 50
    #: per class, at most this many real feature vectors are kept (uniform reservoir) for KID and
    #: the FID bootstrap
    kid_reservoir: Count = 1000
    #: per-class FID/KID use this many synthetic images of each class (seeded uniform subset), so
    #: values are comparable across classes (fewer only when a class has fewer; marked)
    fid_samples_per_class: int = Field(500, ge=2)
    #: a class with fewer real (synthetic) images gets no FID/KID ("too few real images") and
    #: enters no scope and no mean
    min_real_per_class: int = Field(10, ge=2)
    min_synthetic_per_class: int = Field(10, ge=2)
    #: bootstrap replicates for the FID 95% intervals (per class and scope; each costs about one FID per
    #: class and scope); 0 = none
    fid_bootstrap_replicates: int = Field(20, ge=0)
    #: CT 2.5D FID: central fraction of the slices along each axis and every k-th slice (MAISI's
    #: center_slices_ratio / sample_every_k); 1.0 and 1 = every slice
    center_slices_ratio: float = Field(1.0, gt=0.0, le=1.0)
    slice_stride: Count = 1
    ms_ssim_max_pairs: Count = 200
    #: MS-SSIM window size and one positive weight per scale; None = chosen from the image size
    #: (11 px and the 5 standard weights from 176 px per side, fewer scales / a smaller window below)
    ms_ssim_kernel_size: Count | None = None
    ms_ssim_weights: list[PositiveFloat] | None = Field(None, min_length=1)
    batch_size: Count = 64
    #: real reference for FID/KID/memorization: at most this many real training images (seeded
    #: uniform subset); None = the whole training split
    max_real_reference: Count | None = None
    #: images per class in the report's sample grids (real beside synthetic)
    grid_images_per_class: Count = 4
    #: test roles scored by `medlt evaluate` (absent roles, e.g. test_longtail: null, are skipped)
    roles: list[Literal["train", "val", "test", "test_longtail"]] = Field(
        default_factory=lambda: ["test", "test_longtail"], min_length=1)
