"""`synth:` section: what `medlt synth` generates and how it writes it."""

from __future__ import annotations

from typing import Literal

from medlt.recipe.base import Section


class SynthConfig(Section):
    #: to_head | to_count:N | to_ratio:R
    quota: str = "to_head"
    #: image format of the synthetic files; None = the dataset's own (NIH png, MIMIC dcm/jpg, CT nii.gz)
    output_format: Literal["png", "dcm", "jpg", "nii.gz"] | None = None
    batch_size: int = 32
