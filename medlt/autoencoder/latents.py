"""Latent diffusion's training data: every training image encoded once to its scaled posterior mean
s·μ(x) (s = the autoencoder's latent scale factor), cached as one tensor file keyed by the
autoencoder checkpoint's sha256, the preprocessing settings and the training ids, then served as an
in-memory dataset of {"image": latent, "label", "id"} items with the same `labels` / `label_space`
as the image dataset (so training.class_balanced_q works unchanged).

Cache file: data.cache_dir/latents/<key>.pt when data.cache_dir is set, else
<autoencoder run>/latent_cache/<key>.pt (written atomically by rank 0; other ranks wait and read).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from medlt.autoencoder.load import Autoencoder, load_autoencoder
from medlt.errors import CheckpointError, RecipeError
from medlt.utils.checkpoint import load_checkpoint, save_checkpoint
from medlt.utils.distributed import barrier, is_distributed

KEY = "model.latent.autoencoder"


class LatentDataset(Dataset):
    """In-memory latents with the image dataset's labels."""

    def __init__(self, latents: torch.Tensor, labels: np.ndarray, ids: list[str], label_space):
        self.latents = latents
        self.labels = np.asarray(labels)
        self.ids = list(ids)
        self.label_space = label_space

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def __getitem__(self, i: int) -> dict:
        y = self.labels[i]
        label = torch.as_tensor(y, dtype=torch.float32 if self.label_space.multi_label else torch.int64)
        return {"image": self.latents[i], "label": label, "id": self.ids[i]}


def _labels_ids(dataset) -> tuple[np.ndarray, list[str]]:
    if hasattr(dataset, "labels") and hasattr(dataset, "ids"):
        return np.asarray(dataset.labels), [str(i) for i in dataset.ids]
    items = [dataset[i] for i in range(len(dataset))]
    return (np.stack([np.asarray(it["label"]) for it in items]),
            [str(it.get("id", i)) for i, it in enumerate(items)])


def cache_key(ae: Autoencoder, recipe, ids: list[str]) -> str:
    from medlt.data.transforms import cache_key as preprocessing_key

    modality = "ct" if recipe.data.format == "ct-rate" else "cxr"
    text = json.dumps({"autoencoder": ae.sha256, "preprocessing": preprocessing_key(recipe.data, modality),
                       "ct_mode": recipe.data.ct.mode, "ids": ids}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cache_path(ae: Autoencoder, recipe, key: str) -> Path:
    if recipe.data.cache_dir is not None:
        return Path(recipe.data.cache_dir) / "latents" / f"{key}.pt"
    return ae.path.parent.parent / "latent_cache" / f"{key}.pt"


def encode_dataset(ae: Autoencoder, recipe, dataset, *, show_progress: bool = True) -> LatentDataset:
    """The cached (or freshly encoded) scaled latents of `dataset`."""
    from medlt.autoencoder.scale import encode_means

    labels, ids = _labels_ids(dataset)
    key = cache_key(ae, recipe, ids)
    path = cache_path(ae, recipe, key)
    rank = torch.distributed.get_rank() if is_distributed() else 0
    if rank == 0 and not path.is_file():
        mu = encode_means(ae.model, dataset, batch_size=max(1, recipe.autoencoder.evaluate.batch_size),
                          device=ae.device, desc="encode latents" if show_progress else None)
        save_checkpoint(path, {"latents": mu * ae.scale_factor, "ids": ids, "autoencoder_sha256": ae.sha256})
    barrier()
    state = load_checkpoint(path)
    if state.get("ids") != ids or state.get("autoencoder_sha256") != ae.sha256:
        raise CheckpointError(f"{path}: latent cache does not match the training set; delete it")
    return LatentDataset(state["latents"].float(), labels, ids, getattr(dataset, "label_space", None))


def check_latent_fit(recipe, ae: Autoencoder, source: str = "<recipe>") -> None:
    """RecipeError (naming model.latent.autoencoder and the file) unless the autoencoder fits the
    diffusion recipe: same image size and dimensionality, model.in_channels = latent_channels, and
    latent sizes divisible by the UNet's downsampling."""
    from medlt.autoencoder.model import autoencoder_image_sizes

    sizes = autoencoder_image_sizes(recipe)
    where = f"recipe key '{KEY}': {ae.path}"
    if ae.spatial_dims != recipe.model.spatial_dims or len(sizes) != ae.spatial_dims:
        raise RecipeError(f"{where}: the autoencoder is {ae.spatial_dims}D but the diffusion is "
                          f"{recipe.model.spatial_dims}D (model.spatial_dims) with images {sizes}")
    if list(sizes) != list(ae.image_size):
        raise RecipeError(f"{where}: the autoencoder was trained on images of size {ae.image_size}, the recipe's "
                          f"data.image_size gives {sizes}")
    if recipe.model.in_channels != ae.latent_channels:
        raise RecipeError(f"{source}: recipe key 'model.in_channels': must be the autoencoder's latent_channels="
                          f"{ae.latent_channels} ({ae.path}), got {recipe.model.in_channels}")
    f = recipe.model.downsampling_factor
    if any(s % f for s in ae.latent_size):
        raise RecipeError(f"{source}: recipe key 'model.channels': the UNet halves its input "
                          f"{len(recipe.model.channels) - 1} times, so the latent size {ae.latent_size} "
                          f"({ae.path}) must be divisible by {f}; use fewer model.channels levels")


@dataclass
class LatentTraining:
    """What the diffusion trainer needs in latent mode."""

    autoencoder: Autoencoder

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.autoencoder.latent_shape

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode_scaled(z).cpu()

    def checkpoint_entry(self) -> dict:
        return self.autoencoder.checkpoint_entry()


def prepare_training_data(recipe, data, device: torch.device, *, resume_state: dict | None = None):
    """(TrainData, LatentTraining | None). Pixel space (model.latent unset): `data`, or the recipe's.
    Latent space: the same training set, encoded (cached) by the recipe's autoencoder; a resumed
    run must use the autoencoder it started with."""
    from medlt.diffusion.data import TrainData, from_recipe

    if recipe.model.latent is None:
        return data or from_recipe(recipe), None
    ae = load_autoencoder(recipe.model.latent.autoencoder, device, key=KEY)
    check_latent_fit(recipe, ae)
    if resume_state is not None:
        old = (resume_state.get("latent") or {}).get("autoencoder_sha256")
        if old != ae.sha256:
            raise RecipeError(f"recipe key '{KEY}': {ae.path} is not the autoencoder this run started with "
                              f"(sha256 {str(old)[:12]}, now {ae.sha256[:12]}); use that one or a new --out")
    data = data or from_recipe(recipe)
    images = data.dataset if data.dataset is not None else data._recipe_dataset
    latents = encode_dataset(ae, recipe, images)
    if latents.label_space is None:
        latents.label_space = data.label_space
    if data.dataset is not None:
        return TrainData(data.label_space, data.class_counts, data.label_vectors, latents), LatentTraining(ae)
    return TrainData(data.label_space, data.class_counts, data.label_vectors, None,
                     _recipe_dataset=latents), LatentTraining(ae)
