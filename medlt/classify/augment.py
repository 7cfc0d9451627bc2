"""The downstream classifier's training augmentation (LongTailCXR: random rotation ±15° and a random
horizontal flip), applied on top of the deterministic (cacheable) preprocessing.

- rotation: angle uniform in [−θ, θ], θ = classifier.augment_rotation_deg, in the image plane (2D) or
  the axial plane (3D, RAS: axes X–Y), bilinear, corners filled with −1 (black in model space, air in
  CT), like torchvision's RandomRotation fill 0 on [0, 1] images;
- flip (classifier.augment_flip): left–right with probability 0.5 (2D: the width axis; 3D: X).
"""

from __future__ import annotations

import math

from torch.utils.data import Dataset

from medlt.recipe.evaluate import ClassifierConfig
from medlt.utils.tensors import as_plain_tensor


def _shift_up(x):
    return x + 1.0


def _shift_down(x):
    return x - 1.0


def classifier_augmentation(cfg: ClassifierConfig, spatial_dims: int, seed: int = 0):
    """MONAI Compose of the configured random transforms for key "image", or None if all are off."""
    from monai.transforms import Compose, EnsureTyped, Lambdad, RandFlipd, RandRotated

    steps = []
    if cfg.augment_rotation_deg > 0:
        steps += [Lambdad(keys=("image",), func=_shift_up),  # rotate with zero padding = fill −1
                  RandRotated(keys=("image",), range_x=math.radians(cfg.augment_rotation_deg), prob=1.0,
                              keep_size=True, mode="bilinear", padding_mode="zeros"),
                  Lambdad(keys=("image",), func=_shift_down)]
    if cfg.augment_flip:
        steps.append(RandFlipd(keys=("image",), prob=0.5, spatial_axis=1 if spatial_dims == 2 else 0))
    if not steps:
        return None
    tf = Compose([*steps, EnsureTyped(keys=("image",), track_meta=False)])
    tf.set_random_state(seed=seed % (2**32))
    return tf


class AugmentedDataset(Dataset):
    """`dataset` with `transform` applied to every item (re-drawn on every access). Attributes of the
    wrapped dataset (labels, ids, label_space, frame) are forwarded, so samplers work unchanged."""

    def __init__(self, dataset, transform):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        if self.transform is None:
            return item
        # the random transforms run on a plain tensor with MONAI's metadata tracking off: the same
        # numbers, without the per-operation metadata copies that made augmentation about half of a
        # small classifier's epoch (the output drops the metadata anyway, EnsureTyped(track_meta=False))
        from monai.data import get_track_meta, set_track_meta

        item["image"] = as_plain_tensor(item["image"])
        was_tracking = get_track_meta()
        set_track_meta(False)
        try:
            return self.transform(item)
        finally:
            set_track_meta(was_tracking)

    def __getattr__(self, name):
        if name in ("dataset", "transform"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
