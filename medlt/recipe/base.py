"""Base model for every recipe section: unknown keys are rejected (with did-you-mean, see load.py),
plus the range-checked value types the sections share.

Range violations are reported by load.py as one line naming the dotted key and the allowed range,
e.g. "recipe key 'training.max_steps': must be >= 1 (got -5)".
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class KeyProblem(ValueError):
    """A cross-field check failed. `key` is the dotted key relative to the model that raised it
    (e.g. "image_size" inside `data`); load.py prefixes the model's own location."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


#: a count of things or steps: >= 1
Count = Annotated[int, Field(ge=1)]
#: a count where 0 is meaningful (documented per field): >= 0
NonNegativeInt = Annotated[int, Field(ge=0)]
#: a strictly positive real number (rates, sizes, scales)
PositiveFloat = Annotated[float, Field(gt=0)]
#: a non-negative real number (weights, decays of regularisation)
NonNegativeFloat = Annotated[float, Field(ge=0)]
#: a probability in [0, 1]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
