"""The whole recipe: one YAML per dataset drives ingest, training, synthesis and evaluation."""

from __future__ import annotations

from pydantic import Field, model_validator

from medlt.recipe.autoencoder import AutoencoderConfig, check_latent_recipe
from medlt.recipe.base import KeyProblem, NonNegativeInt, Section
from medlt.recipe.data import DataConfig
from medlt.recipe.diffusion import (
    SAMPLERS_BY_OBJECTIVE,
    DiffusionConfig,
    ModelConfig,
    RegularizerConfig,
    SamplingConfig,
    TrainingConfig,
    check_sampling_fits_model,
)
from medlt.recipe.evaluate import ClassifierConfig, EvaluateConfig
from medlt.recipe.synth import SynthConfig


class Recipe(Section):
    name: str = Field(min_length=1)
    #: every random draw derives from it (>= 0)
    seed: NonNegativeInt = 0
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    regularizers: list[RegularizerConfig] = Field(default_factory=list)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    #: the autoencoder of latent diffusion (`medlt train-autoencoder`; see model.latent)
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)

    @model_validator(mode="after")
    def _cross_section(self):
        steps, t = self.sampling.num_inference_steps, self.diffusion.num_train_timesteps
        if steps > t:
            raise KeyProblem("sampling.num_inference_steps", f"must be <= diffusion.num_train_timesteps={t} "
                             f"(got {steps})")
        fits = SAMPLERS_BY_OBJECTIVE[self.diffusion.objective]
        if self.sampling.sampler not in fits:
            raise KeyProblem("sampling.sampler", f"'{self.sampling.sampler}' does not fit diffusion.objective="
                             f"{self.diffusion.objective}; use one of: {', '.join(fits)}")
        check_latent_recipe(self)
        check_sampling_fits_model(self)
        n, fmt = len(self.data.image_size), self.data.format
        want = {"nih-cxr-lt": 2, "mimic-cxr-lt": 2, "ct-rate": 3}.get(fmt)
        if want is not None and n != want:
            raise KeyProblem("data.image_size", f"format {fmt} needs {want} sizes "
                             f"({'H, W' if want == 2 else 'X, Y, Z'}), got {list(self.data.image_size)}")
        return self
