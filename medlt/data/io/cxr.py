"""`read_cxr`: one entry point for chest radiographs in any supported file format."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlt.errors import DataError

#: file suffixes read_cxr understands (lower case)
CXR_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


def read_cxr(path: str | Path) -> np.ndarray:
    """Read a PNG, JPG or DICOM chest radiograph as float32 (H, W) in [0, 1].

    Row 0 is the top of the image and column 0 its left side for every format. Colour images
    are converted to luminance. DICOM: modality LUT, VOI window (or the full stored range),
    MONOCHROME1 inverted (see `read_dicom01`). Raises DataError naming the file when it is
    missing, unreadable, truncated or of an unsupported kind.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CXR_SUFFIXES:
        raise DataError(f"{path}: unsupported image file type '{path.suffix}' "
                        f"(expected one of {', '.join(CXR_SUFFIXES)})")
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    if suffix in (".dcm", ".dicom"):
        from medlt.data.io.dicom import read_dicom01

        img = read_dicom01(path)
    else:
        from medlt.data.io.raster import read_raster01

        img = read_raster01(path)
    if img.ndim != 2 or img.size == 0:
        raise DataError(f"{path}: expected a single 2D image, got array of shape {img.shape}")
    if not np.isfinite(img).all():
        raise DataError(f"{path}: image contains non-finite values")
    return np.clip(img, 0.0, 1.0).astype(np.float32, copy=False)
