"""NIfTI chest CT: atomic writer and a MONAI-based reader that takes spacing and HU from metadata.

CT-RATE's NIfTI headers carry wrong voxel spacing and raw stored values; the true spacing and the
rescale slope/intercept live in its metadata CSV. `load_ct_hu` therefore reads the volume with
MONAI (NibabelReader), reorients it to RAS using the header's axis directions, and then REPLACES
the voxel size with the given spacing and the values with HU = raw * slope + intercept.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlt.errors import DataError
from medlt.utils.atomic import atomic_write_bytes


def spacing_affine(spacing_mm: Sequence[float], shape: Sequence[int] | None = None) -> np.ndarray:
    """RAS affine with the given voxel size; centred on the volume when `shape` is given."""
    sp = [float(s) for s in spacing_mm]
    aff = np.diag(sp + [1.0])
    if shape is not None:
        aff[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(shape[:3], sp, strict=True)]
    return aff


def write_nifti(path: str | Path, hu: np.ndarray, spacing_mm: Sequence[float], *,
                descrip: str, affine: np.ndarray | None = None) -> Path:
    """Atomically write an (X, Y, Z) volume as NIfTI-1 (`.nii` or `.nii.gz`, gzip mtime 0 so the
    bytes are a pure function of the inputs).

    Integer arrays are stored as int16 (values must fit), float arrays as float32. The affine is
    RAS, diag(spacing_mm) centred on the volume, unless `affine` (4x4) is given. `descrip` goes
    into the header's descrip field (max 80 characters), e.g. "SYNTHETIC medlt ...".
    """
    import nibabel as nib

    data = np.asarray(hu)
    if data.ndim != 3:
        raise ValueError(f"{path}: expected an (X, Y, Z) volume, got shape {data.shape}")
    if len(spacing_mm) != 3 or not all(float(s) > 0 and math.isfinite(float(s)) for s in spacing_mm):
        raise ValueError(f"{path}: spacing_mm must be three positive numbers, got {spacing_mm}")
    if np.issubdtype(data.dtype, np.integer):
        if data.size and (data.min() < -32768 or data.max() > 32767):
            raise ValueError(f"{path}: integer values outside int16 range")
        data = data.astype(np.int16)
    else:
        if not np.isfinite(data).all():
            raise ValueError(f"{path}: volume contains non-finite values")
        data = data.astype(np.float32)
    aff = spacing_affine(spacing_mm, data.shape[:3]) if affine is None else np.asarray(affine, float)
    img = nib.Nifti1Image(data, aff)
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_qform(aff, code=1)
    hdr.set_sform(aff, code=1)
    hdr["descrip"] = str(descrip)[:79].encode("ascii", "replace")
    raw = img.to_bytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    elif not path.name.endswith(".nii"):
        raise ValueError(f"{path}: NIfTI file name must end in .nii or .nii.gz")
    return atomic_write_bytes(path, raw, fsync=False)


def _positive_finite(path, name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise DataError(f"{path}: {name} is not finite ({value!r})")
    return v


def _header_scaling(path: Path) -> tuple[float, float]:
    """The header's scl_slope/scl_inter as nibabel applies them on read ((1, 0) when unset)."""
    import nibabel as nib

    proxy = nib.load(str(path)).dataobj
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    slope = 1.0 if slope is None or not math.isfinite(float(slope)) or float(slope) == 0 else float(slope)
    inter = 0.0 if inter is None or not math.isfinite(float(inter)) else float(inter)
    return slope, inter


def load_ct_hu(path: str | Path, spacing_mm: Sequence[float], rescale_slope: float,
               rescale_intercept: float):
    """Read a NIfTI CT volume -> MetaTensor (1, X, Y, Z) float32 in HU, RAS, whose affine carries
    `spacing_mm` (header spacing ignored; header axis directions and origin kept).

    HU = stored * rescale_slope + rescale_intercept, where "stored" are the integers in the file:
    a header scl_slope/scl_inter (which nibabel would apply) is undone first, so the metadata's
    rescale is never applied on top of another one."""
    import torch
    from monai.data import MetaTensor, NibabelReader
    from monai.transforms import LoadImage, Orientation

    from medlt.data.io.monai_quiet import quiet_reader_registration

    path = Path(path)
    if len(spacing_mm) != 3:
        raise DataError(f"{path}: spacing must be three numbers, got {list(spacing_mm)}")
    spacing = [_positive_finite(path, f"spacing_{a}", s) for a, s in zip("xyz", spacing_mm, strict=True)]
    if min(spacing) <= 0:
        raise DataError(f"{path}: spacing must be three positive numbers, got {list(spacing_mm)}")
    slope = _positive_finite(path, "rescale_slope", rescale_slope)
    intercept = _positive_finite(path, "rescale_intercept", rescale_intercept)
    if slope == 0:
        raise DataError(f"{path}: rescale_slope must not be 0")
    if not path.is_file():
        raise DataError(f"{path}: CT volume not found")
    try:
        with quiet_reader_registration():  # MONAI's GPU-DICOM notice, once per LoadImage
            loader = LoadImage(reader=NibabelReader(), image_only=True, ensure_channel_first=True,
                               dtype=np.float32)
        img = loader(str(path))
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise DataError(f"{path}: cannot read NIfTI volume ({type(e).__name__}: {first})") from None
    if img.ndim != 4 or img.shape[0] != 1:
        raise DataError(f"{path}: expected a single 3D volume, got shape {tuple(img.shape)}")
    stored_slope, stored_inter = _header_scaling(path)
    img = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(img)
    aff = img.affine.to(torch.float64).clone()
    directions = aff[:3, :3] / torch.linalg.norm(aff[:3, :3], dim=0, keepdim=True)
    aff[:3, :3] = directions * torch.tensor(spacing, dtype=torch.float64)
    arr = img.as_tensor().to(torch.float32)
    if (stored_slope, stored_inter) != (1.0, 0.0):  # undo header scl_* scaling: back to stored values
        arr = (arr - stored_inter) / stored_slope
    arr = arr * slope + intercept
    meta = dict(img.meta)
    meta.pop("affine", None)
    meta["spacing_source"] = "metadata"
    if "pixdim" in meta:
        pixdim = np.array(meta["pixdim"], dtype=np.float64)
        pixdim[1:4] = spacing
        meta["pixdim"] = pixdim
    meta["filename_or_obj"] = str(path)
    return MetaTensor(arr, affine=aff, meta=meta)
