"""The training rows by manifest `source` (real, copy, synthetic, ideal): what the classifier's
mixing and finishing options read (medlt.classify.train).

- `item_sources`: each training item's source (a CT volume's source for each of its axial slices);
  a table without the column is all real.
- `real_rows_loader`: a loader over the items whose source is `real` only, plain shuffled or
  class-balanced (uniform over classes, cRT's sampling), for classifier.finish. Copy rows are left
  out on purpose: they duplicate real images, so over the real rows class-balanced sampling already
  re-balances (a copy only shifts weight between images of one class), and leaving them out makes
  the finishing set the same images in every arm of a benchmark (real only, copies, real +
  synthetic), so controls and methods are finished identically.
- `real_class_counts`: per class, the number of real rows (images, not slices): the prior of
  classifier.method logit-adjusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from torch.utils.data import Dataset

REAL = "real"
SYNTHETIC = "synthetic"


def _depth(dataset) -> int:
    return int(getattr(dataset, "depth", None) or 1)


def row_sources(frame) -> list[str]:
    """The manifest `source` of each row of a table frame (blank or no column: real)."""
    if frame is None or "source" not in frame.columns:
        return [REAL] * (0 if frame is None else len(frame))
    return [str(s).strip().lower() or REAL for s in frame["source"].fillna("")]


def item_sources(dataset) -> list[str]:
    """The source of each item of a TableDataset (or a wrapper forwarding `frame`); a volume's
    source repeats for each of its slices in CT 2d-axial mode."""
    return [s for s in row_sources(dataset.frame) for _ in range(_depth(dataset))]


def real_class_counts(dataset, num_classes: int) -> list[int]:
    """Per class, the real rows (images) carrying it."""
    labels = np.asarray(dataset.labels)[:: _depth(dataset)]
    real = np.array([s == REAL for s in row_sources(dataset.frame)], dtype=bool)
    labels = labels[real]
    if labels.ndim == 1:
        return [int(c) for c in np.bincount(labels.astype(np.int64), minlength=num_classes)[:num_classes]]
    return [int(c) for c in (labels > 0).sum(axis=0)]


class RowSubset(Dataset):
    """Items `indices` of `dataset`, exposing what the samplers read (labels, ids, label_space)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.labels = np.asarray(dataset.labels)[self.indices]
        self.ids = [dataset.ids[i] for i in self.indices]
        self.label_space = dataset.label_space

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self.dataset[self.indices[index]]


def real_rows_loader(recipe, dataset, batch_size: int, seed: int) -> Callable[[bool], Iterable[dict]]:
    """A factory: balanced -> DataLoader over the real items of `dataset` (class-balanced with q = 0,
    or plain shuffled); DATA's loader, so torchrun shards it like the main stage's."""
    from medlt.data.loaders import build_dataloader

    keep = [i for i, s in enumerate(item_sources(dataset)) if s == REAL]
    subset = RowSubset(dataset, keep)

    def make(balanced: bool):
        from medlt.errors import DataError

        if not keep:
            raise DataError("classifier.finish: the training set has no real row (source real) to finish on")
        return build_dataloader(recipe, "train", batch_size, shuffle=True, balanced_q=0.0 if balanced else None,
                                seed=seed, dataset=subset)

    return make


def source_fields(recipe, base_dataset, train_dataset, batch_size: int, seed: int) -> dict:
    """ClassifierData's train_sources, real_train_counts and real_train for a training set
    (`base_dataset`: the TableDataset; `train_dataset`: what the main stage reads, e.g. augmented)."""
    return {"train_sources": dict(zip(base_dataset.ids, item_sources(base_dataset), strict=True)),
            "real_train_counts": real_class_counts(base_dataset, base_dataset.label_space.num_classes),
            "real_train": real_rows_loader(recipe, train_dataset, batch_size, seed)}
