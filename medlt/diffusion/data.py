"""What training needs from the DATA area: the training dataset, the label space, per-class counts
and (multi-label) the training label vectors, plus an epoch-seeded loader so a resumed run sees the
same batches as an uninterrupted one."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from medlt.data.labels import LabelSpace
from medlt.errors import DataError
from medlt.utils.distributed import is_distributed
from medlt.utils.seeding import derive_seed


@dataclass
class TrainData:
    label_space: LabelSpace
    class_counts: list[int]
    label_vectors: torch.Tensor | None  # (N, K) multi-hot for multi-label, else None
    dataset: Dataset | None = None      # set: use it directly (tests); None: medlt.data.loaders
    _recipe_dataset: Dataset | None = None

    def loader(self, recipe, batch_size: int, epoch: int) -> DataLoader:
        """Shuffled, drop_last loader whose order is a pure function of (recipe.seed, epoch)."""
        seed = derive_seed(recipe.seed, "train-data", epoch) % (2**31)
        if self.dataset is None:
            from medlt.data.loaders import build_dataloader, build_dataset

            if self._recipe_dataset is None:  # built once, reused every epoch
                self._recipe_dataset = build_dataset(recipe, "train", augment=bool(recipe.data.augment))
            return build_dataloader(recipe, "train", batch_size, shuffle=True, drop_last=True,
                                    balanced_q=recipe.training.class_balanced_q, seed=seed,
                                    dataset=self._recipe_dataset)
        if is_distributed():
            sampler = DistributedSampler(self.dataset, shuffle=True, seed=seed, drop_last=True)
        else:
            sampler = RandomSampler(self.dataset, generator=torch.Generator().manual_seed(seed))
        return DataLoader(self.dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                          num_workers=0)


def from_dataset(dataset: Dataset, label_space: LabelSpace) -> TrainData:
    """TrainData over an in-memory dataset of {"image", "label", "id"} dicts."""
    labels = [dataset[i]["label"] for i in range(len(dataset))]
    k = label_space.num_classes
    if label_space.multi_label:
        vec = torch.stack([torch.as_tensor(y, dtype=torch.float32) for y in labels])
        counts = vec.sum(0).long().tolist()
        return TrainData(label_space, counts, vec, dataset)
    idx = torch.as_tensor([int(y) for y in labels])
    counts = torch.bincount(idx, minlength=k).tolist()
    return TrainData(label_space, counts, None, dataset)


def from_recipe(recipe) -> TrainData:
    """TrainData from the recipe's data section (medlt.data.table / loaders)."""
    from medlt.data.loaders import build_dataset
    from medlt.data.table import load_table

    table = load_table(recipe)
    ls = table.label_space
    # built now, so its images are screened (data.on_bad_image) before the run folder exists;
    # counts are those of the images kept
    ds = build_dataset(recipe, "train", augment=bool(recipe.data.augment))
    counts = [int(c) for c in table.label_matrix(ds.frame).sum(axis=0)]
    vectors = None
    if ls.multi_label:
        vectors = torch.tensor(table.label_matrix(ds.frame), dtype=torch.float32)
    if sum(counts) == 0:
        raise DataError(f"{recipe.data.labels or recipe.data.root}: the training split has no labelled images")
    return TrainData(ls, counts, vectors, None, _recipe_dataset=ds)
