"""Base model for every recipe section: unknown keys are rejected (with did-you-mean, see load.py)."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
