"""Datasets and data loaders from a recipe: canonical table -> MONAI pipeline -> (cached) dataset.

Samples are dicts {"image": float32 (1, H, W) or (1, X, Y, Z) in model space, "label": int64
scalar (single-label) or float32 (K,) multi-hot (multi-label), "id": str}. In CT "2d-axial" mode each
item is one axial slice (1, Y, X) of a preprocessed volume (id "<volume id>#z<k>").

Caching: with data.cache_dir the deterministic part of the pipeline runs once per image and is
stored by MONAI PersistentDataset under cache_dir/<modality>-<hash of the preprocessing settings>;
the key of each item includes the file's size and mtime, so edited images are re-processed. With
data.cache_memory the results are kept in RAM (CacheDataset); otherwise every access re-reads.

Bad images (medlt.data.bad_images): the rows' files are screened when a dataset is built (before
a run writes anything), per data.on_bad_image; an item that still fails to load raises
BadImageError naming the file and its label-CSV row instead of MONAI's "applying transform" error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from medlt.data.bad_images import item_error, screen_frame
from medlt.data.labels import LabelSpace
from medlt.data.sources.common import CT_FIELDS
from medlt.data.table import Table, load_table
from medlt.data.transforms import augment_2d, axial_slice, build_transforms, cache_key
from medlt.errors import DataError
from medlt.recipe import Recipe
from medlt.recipe.data import DataConfig
from medlt.utils.seeding import derive_seed


class TableDataset(Dataset):
    """A torch Dataset over rows of the canonical table. Besides __getitem__ it exposes `ids`,
    `labels` (np: (N,) int64 or (N, K) float32, one per item), `label_space` and `frame` (the rows)."""

    def __init__(self, inner, frame: pd.DataFrame, targets: np.ndarray, label_space: LabelSpace,
                 *, depth: int | None = None, slice_transform=None):
        self.inner = inner
        self.frame = frame
        self.label_space = label_space
        self.depth = depth
        self.slice_transform = slice_transform
        ids = frame["id"].astype(str).tolist()
        if depth is None:
            self.ids = ids
            self.labels = targets
        else:
            self.ids = [f"{i}#z{z}" for i in ids for z in range(depth)]
            self.labels = np.repeat(targets, depth, axis=0)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if self.depth is None:
            return self.inner[index]
        vol_index, z = divmod(index, self.depth)
        item = self.inner[vol_index]
        out = {"image": axial_slice(item["image"], z).contiguous(), "label": item["label"],
               "id": self.ids[index]}
        if self.slice_transform is not None:
            out = self.slice_transform(out)
        return out


def _named_failures(base):
    """A subclass of the MONAI dataset class `base` whose per-item failures (load or transform)
    raise BadImageError naming the item's file and label-CSV row."""

    class Named(base):
        def __init__(self, data, *args, origins, **kwargs):
            self.origins = origins  # per item: (csv_file, csv_row, id); set first: CacheDataset fills here
            super().__init__(data, *args, **kwargs)

        def _named(self, fn, index):
            try:
                return fn(index)
            except Exception as e:
                raise item_error(self.origins[index], str(self.data[index]["image"]), e) from e

        def _transform(self, index):
            return self._named(super()._transform, index)

        def _load_cache_item(self, idx):  # CacheDataset filling its cache
            return self._named(super()._load_cache_item, idx)

    Named.__name__ = Named.__qualname__ = f"Named{base.__name__}"
    return Named


def _items(table: Table, frame: pd.DataFrame) -> list[dict]:
    targets = table.targets(frame)
    items = []
    for i in range(len(frame)):
        path = Path(frame["image"].iat[i])
        try:
            st = path.stat()
            stamp = f"{st.st_size}-{st.st_mtime_ns}"
        except OSError:
            raise DataError(f"{frame['csv_file'].iat[i]}:row {frame['csv_row'].iat[i]}: image file "
                            f"not found: {path} (run `medlt data validate`)") from None
        item = {"image": str(path), "label": targets[i], "id": str(frame["id"].iat[i]), "stamp": stamp}
        if table.modality == "ct":
            for f in CT_FIELDS:
                item[f] = float(frame[f].iat[i])
        items.append(item)
    return items


def dataset_from_frame(table: Table, frame: pd.DataFrame, data: DataConfig | None = None, *,
                       augment: bool = False, volumes: bool = False, cache: bool = True,
                       seed: int = 0) -> TableDataset:
    """Dataset over `frame` (rows of `table`). `volumes=True` yields whole CT volumes even in
    2d-axial mode (preview); `cache=False` ignores data.cache_dir / cache_memory."""
    from monai.data import CacheDataset, PersistentDataset
    from monai.data import Dataset as MonaiDataset

    data = data or table.data
    axial = table.modality == "ct" and data.ct.mode == "2d-axial" and not volumes
    transform = build_transforms(data, table.modality, augment=augment and not axial)
    transform.set_random_state(seed=seed % (2**32))
    items = _items(table, frame)  # missing files first: their message says so
    frame = screen_frame(frame, table.modality, getattr(data, "on_bad_image", "error"))
    if len(frame) != len(items):
        items = _items(table, frame)
    origins = list(zip(frame["csv_file"].astype(str), frame["csv_row"].astype(int),
                       frame["id"].astype(str), strict=True))
    if cache and data.cache_dir is not None:
        cache_dir = Path(data.cache_dir) / f"{table.modality}-{cache_key(data, table.modality)}"
        cache_dir.mkdir(parents=True, exist_ok=True)
        inner = _named_failures(PersistentDataset)(items, transform=transform, cache_dir=cache_dir,
                                                   origins=origins)
    elif cache and data.cache_memory:
        inner = _named_failures(CacheDataset)(items, transform=transform, num_workers=0, progress=False,
                                              origins=origins)
    else:
        inner = _named_failures(MonaiDataset)(items, transform=transform, origins=origins)
    targets = table.targets(frame)
    if not axial:
        return TableDataset(inner, frame, targets, table.label_space)
    depth = int(data.image_size[2])
    slice_tf = None
    if augment:
        from monai.transforms import Compose

        slice_tf = Compose(augment_2d(size=(int(data.image_size[1]), int(data.image_size[0]))))
        slice_tf.set_random_state(seed=seed % (2**32))
    return TableDataset(inner, frame, targets, table.label_space, depth=depth, slice_transform=slice_tf)


def build_dataset(recipe: Recipe, role: str, *, augment: bool = False) -> TableDataset:
    """Dataset of the split playing `role` ("train", "val", "test", "test_longtail")."""
    table = load_table(recipe)
    return dataset_from_frame(table, table.role(role), recipe.data, augment=augment, seed=recipe.seed)


def build_dataloader(recipe: Recipe, role: str, batch_size: int, *, shuffle: bool, drop_last: bool = False,
                     balanced_q: float | None = None, seed: int = 0, augment: bool | None = None,
                     dataset: TableDataset | None = None):
    """DataLoader over build_dataset(recipe, role).

    balanced_q: class-balanced resampling with p_c ∝ n_c^q (ClassBalancedSampler); None: plain
    shuffling (callers pass their own setting, e.g. the diffusion's training.class_balanced_q).
    Under torch.distributed each rank gets its own share (DistributedSampler, or the balanced
    sampler's rank slice); call `loader.sampler.set_epoch(epoch)` each epoch.
    augment: default recipe.data.augment for the train role, off otherwise.
    """
    from monai.data import DataLoader
    from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler

    from medlt.data.samplers import ClassBalancedSampler

    if augment is None:
        augment = bool(recipe.data.augment) and role == "train"
    ds = dataset if dataset is not None else build_dataset(recipe, role, augment=augment)
    if len(ds) == 0:
        raise DataError(f"role '{role}' has no samples")
    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if dist else 0
    world = torch.distributed.get_world_size() if dist else 1
    if balanced_q is not None:
        sampler = ClassBalancedSampler(ds.labels, q=balanced_q, seed=seed, rank=rank, world_size=world,
                                       num_classes=ds.label_space.num_classes)
    elif dist:
        sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
                                     drop_last=drop_last)
    elif shuffle:
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed % (2**63)))
    else:
        sampler = SequentialSampler(ds)
    # MONAI's DataLoader re-seeds the dataset's random transforms from `generator` (workers: from a
    # base seed drawn from it); without one it uses torch's global RNG, so the augmentation would
    # depend on whatever ran earlier in the process. Seeding it from `seed` makes a run's data order
    # and augmentation a function of its own seed only.
    gen = torch.Generator().manual_seed(derive_seed(seed, "dataloader") % (2**63))
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      num_workers=recipe.data.num_workers, persistent_workers=False, generator=gen)
