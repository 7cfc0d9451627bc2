"""PNG/JPG reading through MONAI's PILReader and atomic 8-bit PNG/JPG writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlt.errors import DataError
from medlt.utils.atomic import atomic_path

#: divisor that maps each PIL mode's integer range to [0, 1]
_MODE_MAX = {"1": 1.0, "L": 255.0, "P": 255.0, "LA": 255.0, "RGB": 255.0, "RGBA": 255.0,
             "CMYK": 255.0, "YCbCr": 255.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0,
             "I;16N": 65535.0}


def _to_unit_float(img):
    """PILReader converter: any PIL image -> mode 'F' image in [0, 1] (forces the pixel load, so a
    truncated file fails here). EXIF orientation is applied so JPGs display the way they are stored
    by cameras and viewers."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("1", "P", "LA", "RGB", "RGBA", "CMYK", "YCbCr"):
        img, mode = img.convert("L"), "L"
    arr = np.asarray(img)
    if mode in _MODE_MAX:
        scale = _MODE_MAX[mode]
    elif mode == "I":  # 32-bit int: PNG 16-bit often loads as 'I'
        scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
    elif mode == "F":
        scale = 1.0
    else:
        raise ValueError(f"unsupported PIL mode {mode}")
    return Image.fromarray(arr.astype(np.float32) / np.float32(scale))


def read_raster01(path: str | Path) -> np.ndarray:
    """PNG/JPG -> float32 (H, W) in [0, 1], row 0 = top. Uses MONAI's PILReader with
    reverse_indexing=False (MONAI's default transposes to (W, H))."""
    from monai.data import PILReader

    path = Path(path)
    try:
        reader = PILReader(converter=_to_unit_float, reverse_indexing=False)
        data, _ = reader.get_data(reader.read(str(path)))
    except Exception as e:  # PIL raises OSError/UnidentifiedImageError/SyntaxError/ValueError
        raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    return np.asarray(data, dtype=np.float32)


def to_uint8(img01: np.ndarray) -> np.ndarray:
    """[0, 1] float (H, W) -> uint8 with rounding; rejects other shapes and non-finite values."""
    img = np.asarray(img01, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) image, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise ValueError("image contains non-finite values")
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_png(path: str | Path, img01: np.ndarray) -> Path:
    """Atomically write an 8-bit grayscale PNG (row 0 = top)."""
    from PIL import Image

    data = to_uint8(img01)
    with atomic_path(path, fsync=False) as tmp:
        Image.fromarray(data).save(tmp, format="PNG")
    return Path(path)


def write_jpg(path: str | Path, img01: np.ndarray, quality: int = 95) -> Path:
    """Atomically write an 8-bit grayscale JPEG (baseline) at `quality`."""
    from PIL import Image

    data = to_uint8(img01)
    with atomic_path(path, fsync=False) as tmp:
        Image.fromarray(data).save(tmp, format="JPEG", quality=int(quality))
    return Path(path)
