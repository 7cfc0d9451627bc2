"""Generate images from a trained checkpoint (the interface `medlt synth` and `medlt sample` use).

    gen = load_generator("RUN/checkpoints/last.pt", device="cpu")
    x = gen.generate(torch.tensor([0, 3]), [11, 12], guidance_scale=0.8, num_inference_steps=50)

Samples come from the EMA weights. Each sample's noise (initial and, for DDPM, per step) comes from a
torch.Generator seeded with that sample's own seed, so an image does not depend on its batch.

The run-time sampling options (x̂0 clip mode, guidance rescale and interval: `sampling.x0_clip`,
`dynamic_threshold_quantile`, `guidance_rescale`, `guidance_interval`) are the generator's
`sampler_options`: the checkpoint's own recipe's at load, the current recipe's once
`recipe_for_generator` has merged it (as the autoencoder's decode settings are);
`sampling_settings` is their record for the verbs to write.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from medlt.data.labels import LabelSpace
from medlt.diffusion.sampling import SamplerOptions, sample_loop
from medlt.diffusion.schedule import build_scheduler
from medlt.diffusion.unet import build_model
from medlt.errors import CheckpointError, DataError, MedltError
from medlt.recipe import Recipe, recipe_from_resolved
from medlt.utils.checkpoint import file_sha256, load_checkpoint

REQUIRED_KEYS = ("ema", "recipe", "label_space", "train_class_counts")


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (-> RUN/checkpoints/last.pt)."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt"
    return p


class Generator:
    """A trained class-conditional diffusion model ready to sample."""

    def __init__(self, model: torch.nn.Module, recipe: Recipe, label_space: LabelSpace,
                 train_class_counts: list[int], checkpoint_sha256: str, device: torch.device,
                 step: int = 0):
        self.model = model.eval()
        self.recipe = recipe
        self.label_space = label_space
        self.train_class_counts = list(train_class_counts)
        self.checkpoint_sha256 = checkpoint_sha256
        self.device = device
        self.step = step
        self.scheduler = build_scheduler(recipe.diffusion, recipe.model.spatial_dims)
        self.image_shape: tuple[int, ...] = (recipe.model.in_channels, *recipe.data.image_size)
        self.sampler_options = SamplerOptions.from_config(recipe.sampling)

    @property
    def sampling_settings(self) -> dict:
        """The run-time sampling options in use (`SamplerOptions.to_dict`), for the verbs' records."""
        return self.sampler_options.to_dict()

    def _check_labels(self, labels: torch.Tensor) -> torch.Tensor:
        k = self.label_space.num_classes
        if self.label_space.multi_label:
            labels = torch.as_tensor(labels, dtype=torch.float32)
            if labels.dim() != 2 or labels.shape[1] != k:
                raise DataError(f"multi-label generate() needs labels of shape (B, {k}), got {tuple(labels.shape)}")
            return labels
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.dim() != 1:
            raise DataError(f"single-label generate() needs labels of shape (B,), got {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= k):
            raise DataError(f"class index out of range 0..{k - 1}: {labels.tolist()}")
        return labels

    def generate(self, labels: torch.Tensor, seeds: Sequence[int], *, guidance_scale: float | Sequence[float],
                 num_inference_steps: int, sampler: str | None = None, batch_size: int | None = None,
                 callback=None, options: SamplerOptions | None = None) -> torch.Tensor:
        """(B, C, H, W[, D]) float32 on CPU in model space, clamped to [-1, 1]. `guidance_scale`: one
        ω for all, or one per sample (the same image as a batch of that ω alone). `sampler`: None =
        the checkpoint's own sampling.sampler (it fits its objective). `options`: None = this
        generator's `sampler_options`."""
        sampler = sampler or self.recipe.sampling.sampler
        check_sampler(sampler, self.recipe.diffusion.objective)
        options = options or self.sampler_options
        check_options(options, sampler, self.recipe.diffusion)
        labels = self._check_labels(labels)
        seeds = [int(s) for s in seeds]
        if len(seeds) != labels.shape[0]:
            raise DataError(f"{labels.shape[0]} labels but {len(seeds)} seeds")
        per_sample = not isinstance(guidance_scale, int | float)
        if per_sample:
            scales = torch.as_tensor([float(w) for w in guidance_scale], dtype=torch.float32)
            if scales.numel() != len(seeds):
                raise DataError(f"{len(seeds)} seeds but {scales.numel()} guidance scales")
        bs = batch_size or self.recipe.sampling.batch_size
        autocast = self.device.type == "cuda" and self.recipe.training.precision != "fp32"
        out = []
        for start in range(0, len(seeds), bs):
            gens = [torch.Generator().manual_seed(s) for s in seeds[start:start + bs]]
            w = scales[start:start + bs] if per_sample else guidance_scale
            x = sample_loop(self.model, self.scheduler, labels[start:start + bs], gens, self.image_shape,
                            guidance_scale=w, num_inference_steps=num_inference_steps,
                            sampler=sampler, clip_sample=self.recipe.diffusion.clip_sample,
                            autocast=autocast, callback=callback, options=options)
            out.append(x.float().cpu())
        if not out:
            return torch.empty(0, *self.image_shape)
        return torch.cat(out)


def check_sampler(sampler: str, objective: str) -> None:
    """MedltError unless `sampler` is one of the samplers of the model's objective."""
    from medlt.recipe.diffusion import SAMPLERS_BY_OBJECTIVE

    fits = SAMPLERS_BY_OBJECTIVE[objective]
    if sampler not in fits:
        raise MedltError(f"sampler '{sampler}' does not fit this model (diffusion.objective={objective}); "
                        f"use one of: {', '.join(fits)}")


def check_options(options: SamplerOptions, sampler: str, diffusion) -> None:
    """MedltError when `options` clamp x̂0 where the model's sampler does not (rflow) or must not
    (diffusion.clip_sample false); the recipe refuses the same with its keys' names."""
    if options.x0_clip in ("consistent", "dynamic"):
        if sampler == "rflow":
            raise MedltError(f"sampling.x0_clip '{options.x0_clip}' does not apply to sampler 'rflow' (it never "
                             f"clamps x̂0); use legacy or none")
        if not diffusion.clip_sample:
            raise MedltError(f"sampling.x0_clip '{options.x0_clip}' clamps x̂0, but this model has "
                             f"diffusion.clip_sample false; use legacy or none")


def load_generator(checkpoint: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Load a training checkpoint's EMA weights, recipe, label space and training class counts."""
    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a medlt diffusion checkpoint (missing {missing})")
    recipe = recipe_from_resolved(state["recipe"])
    label_space = LabelSpace.from_dict(state["label_space"])
    device = torch.device(device)
    model = build_model(recipe.model, label_space)
    try:
        model.load_state_dict(state["ema"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: EMA weights do not fit the recipe's model "
                              f"({str(e).splitlines()[0]})") from None
    model.to(device)
    gen = Generator(model, recipe, label_space, [int(c) for c in state["train_class_counts"]],
                    file_sha256(path), device, step=int(state.get("step", 0)))
    from medlt.autoencoder.generator import with_latent_decoder

    return with_latent_decoder(gen, state, path, device)  # latent diffusion: decodes its samples


def recipe_for_generator(recipe: Recipe, gen: Generator, where: str | Path,
                         compared: frozenset[str] = frozenset()) -> Recipe:
    """`recipe` with the model-defining keys of `gen`'s checkpoint (medlt.diffusion.model_keys):
    RecipeError when the recipe sets one of them to another value (except the `compared` keys, on
    which checkpoints measured side by side differ); a sampler that does not fit the checkpoint's
    objective follows it."""
    from medlt.autoencoder.generator import apply_decode_settings
    from medlt.diffusion.model_keys import recipe_with_model_of

    ae = getattr(gen, "autoencoder", None)  # latent checkpoints carry their autoencoder
    out = recipe_with_model_of(recipe, gen.recipe, where=str(where),
                               latent_config=ae.config.model_dump(mode="json") if ae is not None else None,
                               compared=compared)
    apply_decode_settings(gen, out)  # latent: decode with this recipe's run-time autoencoder.decode* settings
    gen.sampler_options = SamplerOptions.from_config(out.sampling)  # run-time, like guidance_scale
    return out
