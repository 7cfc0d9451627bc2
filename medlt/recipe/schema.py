"""The whole recipe: one YAML per dataset drives ingest, training, synthesis and evaluation."""

from __future__ import annotations

from pydantic import Field

from medlt.recipe.base import Section
from medlt.recipe.data import DataConfig
from medlt.recipe.diffusion import (
    DiffusionConfig,
    ModelConfig,
    RegularizerConfig,
    SamplingConfig,
    TrainingConfig,
)
from medlt.recipe.evaluate import ClassifierConfig, EvaluateConfig
from medlt.recipe.synth import SynthConfig


class Recipe(Section):
    name: str
    seed: int = 0
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    regularizers: list[RegularizerConfig] = Field(default_factory=list)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
