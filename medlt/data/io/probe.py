"""Cheap checks of an image file before it is decoded: header and end-of-file only.

`probe_image(path, modality)` reads the header (and the last bytes) of one file and returns
- None when nothing looks wrong (the file may still fail to decode later: a corrupt block in the
  middle of a PNG keeps a valid header and trailer),
- ("bad", reason) when the header alone proves the file unusable (empty, not an image of that
  kind, a 4D volume, a dimension of 1),
- ("suspect", reason) when a cheap sign says it may be truncated (a PNG without its IEND chunk,
  a JPEG without its end-of-image marker, a .nii.gz whose gzip trailer disagrees with the header,
  a native DICOM shorter than its pixel data). Callers confirm suspects with a full decode
  (`decode_problem`), so a cheap sign never rejects a file that decodes.

`decode_problem(path, modality)` fully decodes the file (every voxel) and returns the reason it is
unusable, or None.

Rules shared by both: a CXR is one 2D image, each side >= 2 pixels; a CT volume is 3D (trailing
dimensions of size 1 are ignored, e.g. (X, Y, Z, 1)), each side >= 2 voxels, all values finite.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from medlt.errors import DataError

#: the last 12 bytes of every complete PNG: zero-length IEND chunk and its CRC
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
#: JPEG end-of-image marker
JPEG_EOI = b"\xff\xd9"
Verdict = tuple[str, str] | None


def volume_shape_problem(shape) -> str | None:
    """Why an array of `shape` is not one CT volume, or None (trailing size-1 dimensions after
    the third are ignored)."""
    shape = tuple(int(s) for s in shape)
    spatial = shape
    while len(spatial) > 3 and spatial[-1] == 1:
        spatial = spatial[:-1]
    if len(spatial) != 3:
        return f"not a single 3D volume (shape {shape}; 4D series and 2D images are not supported)"
    if min(spatial) < 2:
        return f"volume has a dimension of size {min(spatial)} (shape {shape}); each side needs >= 2 voxels"
    return None


def image_shape_problem(shape) -> str | None:
    """Why an array of `shape` is not one 2D radiograph, or None."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        return f"not a single 2D image (shape {shape})"
    if min(shape) < 2:
        return f"image has a side of {min(shape)} pixel(s) (shape {shape}); each side needs >= 2"
    return None


def _tail(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read()


def _probe_raster(path: Path, suffix: str) -> Verdict:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            frames = int(getattr(im, "n_frames", 1))
    except UnidentifiedImageError:
        return "bad", "not a PNG/JPEG image (unrecognised file header)"
    except Exception as e:  # PIL raises several types for damaged headers
        return "bad", f"cannot read the image header ({type(e).__name__}: {e})"
    if frames > 1:
        return "bad", f"image has {frames} frames; expected one"
    shape = image_shape_problem((h, w))
    if shape:
        return "bad", shape
    if suffix == ".png":
        if _tail(path, len(PNG_IEND)) != PNG_IEND:
            return "suspect", "PNG does not end with its IEND chunk (truncated?)"
    elif JPEG_EOI not in _tail(path, 1024):
        return "suspect", "JPEG has no end-of-image marker (truncated?)"
    return None


def _probe_dicom(path: Path) -> Verdict:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except InvalidDicomError:
        return "bad", "not a DICOM file (no DICM prefix or file meta header)"
    except Exception as e:
        return "bad", f"cannot parse the DICOM header ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        return "bad", f"DICOM has {frames} frames; expected one"
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return "bad", "DICOM has no Rows/Columns (no image)"
    shape = image_shape_problem((rows, cols))
    if shape:
        return "bad", shape
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and not syntax.is_compressed:
        need = rows * cols * int(ds.get("SamplesPerPixel", 1)) * int(ds.get("BitsAllocated", 16)) // 8
        if path.stat().st_size < need:
            return "suspect", f"file is shorter than its {need}-byte pixel data (truncated?)"
    return None


def _probe_nifti(path: Path) -> Verdict:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape = img.shape
        proxy = img.dataobj  # its offset is where the voxels start (the header may say 0)
        offset = int(getattr(proxy, "offset", img.header.get_data_offset()))
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(img.header.get_data_dtype()).itemsize
    except Exception as e:  # nibabel/zlib raise many types for damaged headers
        first = (str(e).strip().splitlines() or [""])[-1]
        return "bad", f"cannot read the NIfTI header ({type(e).__name__}: {first})"
    problem = volume_shape_problem(shape)
    if problem:
        return "bad", problem
    expected = offset + nbytes
    if path.name.lower().endswith(".gz"):
        tail = _tail(path, 4)
        if len(tail) < 4:
            return "suspect", "gzip stream too short (truncated?)"
        isize = struct.unpack("<I", tail)[0]  # uncompressed size mod 2**32 (RFC 1952)
        if isize != expected % 2**32:
            return "suspect", (f"gzip trailer gives {isize} uncompressed bytes, the header implies "
                               f"{expected} (truncated?)")
    elif path.stat().st_size < expected:
        return "bad", f"file has {path.stat().st_size} bytes, the header implies {expected} (truncated)"
    return None


def probe_image(path: str | Path, modality: str) -> Verdict:
    """Header/trailer check of one file (see module docstring)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        return "bad", "image file not found"
    if not p.is_file():
        return "bad", "not a regular file"
    if size == 0:
        return "bad", "file is empty (0 bytes)"
    name = p.name.lower()
    try:
        if modality == "ct" or name.endswith((".nii", ".nii.gz")):
            return _probe_nifti(p)
        if name.endswith((".dcm", ".dicom")):
            return _probe_dicom(p)
        if name.endswith(".png"):
            return _probe_raster(p, ".png")
        if name.endswith((".jpg", ".jpeg")):
            return _probe_raster(p, ".jpg")
    except OSError as e:
        return "bad", f"cannot read file ({e.strerror or e})"
    return "bad", f"unsupported image file type '{p.suffix}'"


def decode_problem(path: str | Path, modality: str) -> str | None:
    """Fully decode one file; the reason it is unusable, or None."""
    p = Path(path)
    if not p.is_file():
        return "image file not found"
    if p.stat().st_size == 0:
        return "file is empty (0 bytes)"
    try:
        if modality == "ct":
            import nibabel as nib

            img = nib.load(str(p))
            problem = volume_shape_problem(img.shape)
            if problem:
                return problem
            arr = np.asarray(img.dataobj)
            if not np.isfinite(arr).all():
                return "volume has non-finite values"
        else:
            from medlt.data.io.cxr import read_cxr

            arr = read_cxr(p)
            problem = image_shape_problem(arr.shape)
            if problem:
                return problem
    except DataError as e:
        msg = str(e)
        return msg[len(str(p)) + 2:] if msg.startswith(f"{p}: ") else msg
    except Exception as e:  # nibabel/zlib/PIL raise many types for damaged files
        first = (str(e).strip().splitlines() or [""])[-1]
        return f"cannot decode ({type(e).__name__}: {first})"
    return None
