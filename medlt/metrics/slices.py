"""2D slices of 3D volumes for the 2.5D FID, as MONAI's MAISI computes it
(generation/maisi/scripts/compute_fid_2-5d_ct.py): along each of the three axes, every slice (or
the central fraction `center_ratio` of the slices, every `stride`-th), each slice one sample.

Along an axis of extent L the kept indices are range(int((1 − r)/2 · L), int((1 + r)/2 · L), stride)
(MAISI's start/end rule), i.e. all L slices for r = 1, stride = 1. Volumes are (B, C, X, Y, Z):
axial slices fix Z (MAISI's XY plane), coronal fix Y, sagittal fix X.
"""

from __future__ import annotations

import torch

PLANES = {"axial": 3, "coronal": 2, "sagittal": 1}  # index of the fixed axis in (C, X, Y, Z)


def slice_indices(extent: int, center_ratio: float = 1.0, stride: int = 1) -> range:
    if not 0 < center_ratio <= 1 or stride < 1:
        raise ValueError(f"center_ratio must be in (0, 1] and stride >= 1, got {center_ratio}, {stride}")
    return range(int((1.0 - center_ratio) / 2.0 * extent), int((1.0 + center_ratio) / 2.0 * extent), stride)


def volume_slices(volumes: torch.Tensor, plane: str, center_ratio: float = 1.0,
                  stride: int = 1) -> tuple[torch.Tensor, int]:
    """(B, C, X, Y, Z) -> ((B·k, C, h, w) slices, volume-major, and k = slices per volume)."""
    dim = PLANES[plane] + 1  # batch dim first
    idx = list(slice_indices(volumes.shape[dim], center_ratio, stride))
    s = volumes.index_select(dim, torch.tensor(idx, dtype=torch.long)).movedim(dim, 1)  # (B, k, C, h, w)
    return s.reshape(-1, *s.shape[2:]), len(idx)
