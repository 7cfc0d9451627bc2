"""Sampling a latent-diffusion checkpoint: the UNet samples diffusion-space latents s·z (not
clamped), the autoencoder the checkpoint carries decodes z = latents / s to images in model space
[-1, 1] at the recipe's resolution. Same interface as medlt.diffusion.sample.Generator, so
`medlt sample`, `synth`, `tune-guidance` and `evaluate` work unchanged; `image_shape` is the
decoded image's shape.

The autoencoder's network comes from the checkpoint; how it decodes (`autoencoder.decode`,
`decode_tile`, `decode_overlap`) is a run-time setting of the current recipe
(`apply_decode_settings`), recorded by the verbs as `decode_settings`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medlt.autoencoder.load import Autoencoder, autoencoder_from_entry
from medlt.diffusion.sample import Generator, check_sampler
from medlt.diffusion.sampling import sample_loop
from medlt.errors import DataError, RecipeError


class LatentGenerator(Generator):
    def __init__(self, base: Generator, autoencoder: Autoencoder):
        self.__dict__.update(base.__dict__)
        self.autoencoder = autoencoder
        self.latent_shape: tuple[int, ...] = autoencoder.latent_shape
        self.image_shape = (autoencoder.config.in_channels, *autoencoder.image_size)

    @property
    def decode_settings(self) -> dict:
        return self.autoencoder.decode_settings

    @torch.no_grad()
    def generate_latents(self, labels: torch.Tensor, seeds: Sequence[int], *,
                         guidance_scale: float | Sequence[float], num_inference_steps: int,
                         sampler: str | None = None, batch_size: int | None = None,
                         callback=None) -> torch.Tensor:
        """(B, latent_channels, *latent) diffusion-space latents, float32 on CPU. `guidance_scale`:
        one ω for all, or one per sample (`medlt synth --guidance-from`), as in Generator.generate.
        `sampler`: None = the checkpoint's own sampling.sampler (it fits its objective)."""
        sampler = sampler or self.recipe.sampling.sampler
        check_sampler(sampler, self.recipe.diffusion.objective)
        labels = self._check_labels(labels)
        seeds = [int(s) for s in seeds]
        if len(seeds) != labels.shape[0]:
            raise DataError(f"{labels.shape[0]} labels but {len(seeds)} seeds")
        per_sample = not isinstance(guidance_scale, int | float)
        if per_sample:  # sample_loop takes a float or a (B,) tensor
            guidance_scale = torch.as_tensor([float(w) for w in guidance_scale], dtype=torch.float32)
            if guidance_scale.numel() != len(seeds):
                raise DataError(f"{len(seeds)} seeds but {guidance_scale.numel()} guidance scales")
        bs = batch_size or self.recipe.sampling.batch_size
        autocast = self.device.type == "cuda" and self.recipe.training.precision != "fp32"
        out = []
        for start in range(0, len(seeds), bs):
            gens = [torch.Generator().manual_seed(s) for s in seeds[start:start + bs]]
            w = guidance_scale[start:start + bs] if per_sample else guidance_scale
            out.append(sample_loop(self.model, self.scheduler, labels[start:start + bs], gens, self.latent_shape,
                                   guidance_scale=w, num_inference_steps=num_inference_steps,
                                   sampler=sampler, clip_sample=False, autocast=autocast, callback=callback,
                                   clamp_output=False).float().cpu())
        return torch.cat(out) if out else torch.empty(0, *self.latent_shape)

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, seeds: Sequence[int], *, guidance_scale: float | Sequence[float],
                 num_inference_steps: int, sampler: str | None = None, batch_size: int | None = None,
                 callback=None) -> torch.Tensor:
        """(B, C, H, W[, D]) decoded images, float32 on CPU in model space, clamped to [-1, 1]."""
        z = self.generate_latents(labels, seeds, guidance_scale=guidance_scale,
                                  num_inference_steps=num_inference_steps, sampler=sampler,
                                  batch_size=batch_size, callback=callback)
        if z.shape[0] == 0:
            return torch.empty(0, *self.image_shape)
        bs = batch_size or self.recipe.sampling.batch_size
        return torch.cat([self.autoencoder.decode_scaled(z[s:s + bs]).cpu() for s in range(0, len(z), bs)])


def with_latent_decoder(gen: Generator, state: dict, path, device) -> Generator:
    """`gen` itself for a pixel-space checkpoint; a LatentGenerator for one with a "latent" entry."""
    entry = state.get("latent")
    if not entry:
        return gen
    return LatentGenerator(gen, autoencoder_from_entry(entry, device, str(path)))


def apply_decode_settings(gen: Generator, recipe) -> dict | None:
    """Make a latent generator decode with `recipe`'s run-time settings (autoencoder.decode,
    decode_tile, decode_overlap), not the ones frozen into its checkpoint, and return them (what
    the verbs record); None for a pixel-space generator. RecipeError, before any sampling, when
    decode_tile does not have one size per latent dimension."""
    ae = getattr(gen, "autoencoder", None)
    if ae is None:
        return None
    cfg = recipe.autoencoder
    dims = len(ae.latent_size)
    if cfg.decode == "sliding-window" and cfg.decode_tile is not None and len(cfg.decode_tile) != dims:
        raise RecipeError(f"recipe key 'autoencoder.decode_tile': {len(cfg.decode_tile)} sizes "
                          f"{list(cfg.decode_tile)} for the {dims}D latents {list(ae.latent_size)} of this checkpoint")
    ae.use_decode_settings(cfg.decode, cfg.decode_tile, cfg.decode_overlap)
    return ae.decode_settings
