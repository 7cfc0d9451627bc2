"""Checks that tie the image size to a network, run by the verbs that build that network (train,
sample and synth for the diffusion UNet; classify and evaluate for the classifier) right after the
recipe is loaded, before anything is read or written. A recipe used only for data checks or the
classifier need not fit the diffusion UNet, so these are not part of plain recipe validation.
"""

from __future__ import annotations

from collections.abc import Sequence

from medlt.errors import RecipeError
from medlt.recipe.load import key_source
from medlt.recipe.schema import Recipe

#: MONAI DenseNet121 pools its input 32-fold (stem /4, three transitions /2); smaller images fail
DENSENET_MIN_SIZE = 32
#: channels of every image the data sources give (grayscale radiographs, CT volumes in HU)
IMAGE_CHANNELS = 1


def _refused(key: str, source: str, overrides: Sequence[str], what: str) -> RecipeError:
    """RecipeError for one key, naming the recipe file or the `--set` that set the key."""
    return RecipeError(f"{key_source(key, source, overrides, what)}: recipe key '{key}': {what}")


def diffusion_image_sizes(recipe: Recipe) -> list[int]:
    """The spatial sizes the diffusion UNet sees: data.image_size, or (Y, X) of the axial slices in
    CT 2d-axial mode."""
    size = list(recipe.data.image_size)
    if len(size) == 3 and recipe.data.ct.mode == "2d-axial":
        return [size[1], size[0]]
    return size


def check_diffusion_shapes(recipe: Recipe, source: str = "<recipe>", overrides: Sequence[str] = ()) -> None:
    """RecipeError when data.image_size does not fit model.spatial_dims or the UNet's downsampling
    2^(len(model.channels) - 1), or (pixel diffusion) model.in_channels is not the images' channels.
    Each message names `source` (the recipe file), or the `--set` of `overrides` that set the key."""
    sizes = diffusion_image_sizes(recipe)
    m = recipe.model
    if len(sizes) != m.spatial_dims:
        raise _refused("model.spatial_dims", source, overrides, f"is {m.spatial_dims} but the images "
                       f"are {len(sizes)}D (data.image_size={list(recipe.data.image_size)}, "
                       f"data.ct.mode={recipe.data.ct.mode})")
    if getattr(m, "latent", None) is not None:
        return  # latent diffusion: the UNet sees the autoencoder's latents, checked where they are made
    if m.in_channels != IMAGE_CHANNELS:
        raise _refused("model.in_channels", source, overrides, f"is {m.in_channels} but the images have "
                       f"{IMAGE_CHANNELS} channel (pixel diffusion: model.latent is not set); use "
                       f"model.in_channels={IMAGE_CHANNELS}, or set model.latent to an autoencoder run with "
                       f"latent_channels={m.in_channels}")
    f = m.downsampling_factor
    if any(s % f for s in sizes):
        fit = [max(f, round(s / f) * f) for s in recipe.data.image_size]
        raise _refused("data.image_size", source, overrides, f"every size must be divisible by {f} "
                       f"(the UNet halves it len(model.channels) - 1 = {len(m.channels) - 1} times; got "
                       f"{list(recipe.data.image_size)}); e.g. {fit}, or fewer model.channels levels")


def check_classifier_shapes(recipe: Recipe, source: str = "<recipe>", overrides: Sequence[str] = ()) -> None:
    """RecipeError when data.image_size is too small for the classifier architecture."""
    if recipe.classifier.architecture == "densenet121" and min(recipe.data.image_size) < DENSENET_MIN_SIZE:
        raise _refused("data.image_size", source, overrides, f"classifier.architecture densenet121 needs "
                       f"every size >= {DENSENET_MIN_SIZE} (got {list(recipe.data.image_size)}); use a "
                       f"resnet for smaller images")
