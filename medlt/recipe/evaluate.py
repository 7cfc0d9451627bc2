"""`classifier:` and `evaluate:` sections."""

from __future__ import annotations

from typing import Literal

from medlt.recipe.base import Section


class ClassifierConfig(Section):
    architecture: Literal["densenet121", "resnet18", "resnet50"] = "resnet50"
    #: long-tail baselines: plain, class-balanced reweighting, decoupled classifier re-training
    method: Literal["erm", "class-balanced", "crt"] = "erm"
    epochs: int = 60
    per_rank_batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-5
    crt_epochs: int = 10


class EvaluateConfig(Section):
    #: memorization: a synthetic image is a near-copy when its nearest real training image is
    #: closer than this percentile of real-to-real nearest distances
    memorization_percentile: float = 5.0
    kid_subset_size: int = 100
    ms_ssim_max_pairs: int = 200
