"""`synth:` section: what `medlt synth` generates and how it writes it (docs/methods.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from medlt.recipe.base import Section


class SynthConfig(Section):
    #: to_head | to_count:N | to_ratio:R (checked by medlt.synth.quotas.parse_quota)
    quota: str = "to_head"

    @field_validator("quota")
    @classmethod
    def _quota_form(cls, v: str) -> str:
        from medlt.errors import RecipeError
        from medlt.synth.quotas import parse_quota

        try:
            parse_quota(v)
        except RecipeError as e:
            raise ValueError(str(e)) from None
        return v
    #: image format of the synthetic files; None = the dataset's own (NIH png, MIMIC dcm, CT nii.gz)
    output_format: Literal["png", "dcm", "jpg", "nii.gz"] | None = None
    #: images per generator call; part of what fixes the output bytes (keep it when resuming)
    batch_size: int = Field(32, ge=1)
    #: quality filter (--filter-classifier): rounds of replacing rejected images before giving up
    filter_max_rounds: int = Field(10, ge=1)
    #: best of K (docs/methods.md, "Best of K candidates"): candidates drawn per planned image; 1 = off
    candidates_per_image: int = Field(1, ge=1)
    #: the classifier that scores the candidates: a `medlt classify` run (or its .pt) trained on the
    #: real long-tailed training split only; required when candidates_per_image > 1
    selector: Path | None = None
    #: best: the candidate the selector scores highest; best-not-near-copy: the highest-scored one that
    #: is not a near-copy of a real training image (needs --drop-near-copies EXTRACTOR)
    selection_rule: Literal["best", "best-not-near-copy"] = "best"
