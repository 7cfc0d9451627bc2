"""MONAI transform pipelines, one builder per modality, built from the recipe's data section.

Model space (docs/datasets.md): CXR 2*x01 - 1; CT clip(HU, window) / hu_scale (default [-1, 1], pad
value = the window's low end / hu_scale = -1). Inverse for writers: x01 = (x + 1) / 2; HU = x * 1000.

Every pipeline ends in a dict {"image": float32 tensor, "label": tensor, "id": str}. The
deterministic part comes first so that PersistentDataset/CacheDataset cache it; the optional light
augmentation (small affine + intensity jitter, never a left-right flip: chest anatomy is
lateralised) comes last and is re-drawn every time.
"""

from __future__ import annotations

import math

import numpy as np

from medlt.errors import RecipeError
from medlt.recipe.data import DataConfig

#: bump when a change to the deterministic pipelines must invalidate on-disk caches
PIPELINE_VERSION = 1
KEEP = ("image", "label", "id")


def clamp_unit(x):
    """Clamp to [-1, 1] (model space) after intensity augmentation."""
    return x.clamp(-1.0, 1.0) if hasattr(x, "clamp") else np.clip(x, -1.0, 1.0)


def _size(data: DataConfig, n: int, what: str) -> tuple[int, ...]:
    size = tuple(int(s) for s in data.image_size)
    if len(size) != n or min(size) < 1:
        raise RecipeError(f"recipe key 'data.image_size': {what} needs {n} positive sizes, got {list(size)}")
    return size


def augment_2d(keys=("image",), size: tuple[int, int] = (256, 256)) -> list:
    """Light 2D augmentation in model space: rotation <= 3 deg, scale +-5 %, shift <= 3 %, intensity
    scale/shift +-5 %, then clamp to [-1, 1]. No flips."""
    from monai.transforms import Lambdad, RandAffined, RandScaleIntensityd, RandShiftIntensityd

    return [
        RandAffined(keys=keys, prob=0.8, rotate_range=math.radians(3.0), scale_range=0.05,
                    translate_range=(0.03 * size[0], 0.03 * size[1]), padding_mode="border", mode="bilinear"),
        RandScaleIntensityd(keys=keys, factors=0.05, prob=0.5),
        RandShiftIntensityd(keys=keys, offsets=0.05, prob=0.5),
        Lambdad(keys=keys, func=clamp_unit),
        _plain(keys),
    ]


def _plain(keys):
    from monai.transforms import EnsureTyped

    return EnsureTyped(keys=keys, track_meta=False)


def augment_3d(keys=("image",)) -> list:
    """Light 3D augmentation: rotation <= 3 deg about each axis, scale +-5 %, intensity +-5 %."""
    from monai.transforms import Lambdad, RandAffined, RandScaleIntensityd, RandShiftIntensityd

    r = math.radians(3.0)
    return [
        RandAffined(keys=keys, prob=0.8, rotate_range=(r, r, r), scale_range=0.05, padding_mode="border",
                    mode="bilinear"),
        RandScaleIntensityd(keys=keys, factors=0.05, prob=0.5),
        RandShiftIntensityd(keys=keys, offsets=0.05, prob=0.5),
        Lambdad(keys=keys, func=clamp_unit),
        _plain(keys),
    ]


def label_tensor(y):
    """Single-label index -> int64 scalar tensor; multi-hot -> float32 (K,) tensor."""
    import torch

    y = np.asarray(y)
    return torch.as_tensor(y, dtype=torch.float32 if y.ndim else torch.int64)


def _finish() -> list:
    import torch
    from monai.transforms import EnsureTyped, Lambdad, SelectItemsd

    return [
        EnsureTyped(keys=("image",), dtype=torch.float32, track_meta=False),
        Lambdad(keys=("label",), func=label_tensor),
        SelectItemsd(keys=KEEP),
    ]


def cxr_transforms(data: DataConfig, *, augment: bool = False):
    """2D CXR: LoadCXRd (PNG/JPG/DICOM -> (1, H, W) in [0, 1], row 0 = head) -> resize to
    data.image_size (bilinear, anti-aliased when shrinking) -> 2*x-1 -> optional augmentation."""
    from monai.transforms import Compose, Resized, ScaleIntensityRanged

    from medlt.data.io import LoadCXRd

    size = _size(data, 2, "a CXR")
    steps = [
        LoadCXRd(keys=("image",)),
        Resized(keys=("image",), spatial_size=size, mode="bilinear", anti_aliasing=True),
        ScaleIntensityRanged(keys=("image",), a_min=0.0, a_max=1.0, b_min=-1.0, b_max=1.0, clip=True),
        *_finish(),
    ]
    if augment:
        steps += augment_2d(size=size)
    return Compose(steps)


def ct_volume_transforms(data: DataConfig, *, augment: bool = False):
    """3D CT: LoadCTd (spacing/HU from the metadata fields) -> Orientationd RAS -> Spacingd to
    data.ct.spacing_mm -> clip HU to data.ct.hu_window and divide by hu_scale -> centre crop/pad to
    data.ct.crop_size (pad with the window's low end, -1) -> resize to data.image_size -> optional
    augmentation. Output (1, X, Y, Z)."""
    from monai.transforms import (
        Compose,
        Orientationd,
        Resized,
        ResizeWithPadOrCropd,
        ScaleIntensityRanged,
        Spacingd,
    )

    from medlt.data.io import LoadCTd

    size = _size(data, 3, "a CT volume")
    ct = data.ct
    lo, hi = ct.hu_window
    if not hi > lo or ct.hu_scale <= 0:
        raise RecipeError("recipe keys 'data.ct.hu_window' / 'data.ct.hu_scale': need low < high and scale > 0")
    pad = lo / ct.hu_scale
    steps = [
        LoadCTd(keys=("image",)),
        Orientationd(keys=("image",), axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Spacingd(keys=("image",), pixdim=tuple(ct.spacing_mm), mode="bilinear", padding_mode="border"),
        ScaleIntensityRanged(keys=("image",), a_min=lo, a_max=hi, b_min=lo / ct.hu_scale,
                             b_max=hi / ct.hu_scale, clip=True),
    ]
    if ct.crop_size is not None:
        steps.append(ResizeWithPadOrCropd(keys=("image",), spatial_size=tuple(ct.crop_size),
                                          mode="constant", value=pad))
        if tuple(ct.crop_size) != size:
            shrink = all(c >= s for c, s in zip(ct.crop_size, size, strict=True))
            steps.append(Resized(keys=("image",), spatial_size=size, mode="area" if shrink else "trilinear"))
    else:
        steps.append(Resized(keys=("image",), spatial_size=size, mode="trilinear", anti_aliasing=True))
    steps += _finish()
    if augment:
        steps += augment_3d()
    return Compose(steps)


def axial_slice(volume, z: int):
    """(1, X, Y, Z) RAS volume -> (1, Y, X) axial slice in radiological display orientation:
    anterior at the top, the patient's right on the image's left."""
    return display_plane(volume[0, :, :, z])[None]


def display_plane(plane):
    """A 2D plane of a RAS volume (axial (X, Y), coronal (X, Z) or sagittal (Y, Z)) -> upright
    display: both axes reversed and transposed (superior/anterior up, patient right on the left)."""
    return plane.flip(0).flip(1).T if hasattr(plane, "flip") else plane[::-1, ::-1].T


def build_transforms(data: DataConfig, modality: str, *, augment: bool = False):
    """The pipeline for a modality ("cxr" or "ct"; CT here always yields volumes, see
    medlt.data.loaders for 2d-axial slices)."""
    if modality == "cxr":
        return cxr_transforms(data, augment=augment)
    if modality == "ct":
        return ct_volume_transforms(data, augment=augment)
    raise ValueError(f"unknown modality {modality!r}")


def cache_key(data: DataConfig, modality: str) -> str:
    """Short hash of everything that determines the cached (deterministic) output."""
    import hashlib
    import json

    cfg = {"v": PIPELINE_VERSION, "modality": modality, "size": list(data.image_size),
           "format": data.format, "multi_label": data.multi_label}
    if modality == "ct":
        cfg["ct"] = data.ct.model_dump(mode="json", exclude={"mode"})
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
