"""Image I/O for chest radiographs (PNG/JPG/DICOM) and chest CT (NIfTI).

Conventions:
- 2D images are float32 (H, W) in [0, 1]; row 0 = top of the image (head), column 0 = image left,
  the same for every file format.
- CT volumes are (X, Y, Z) arrays in HU with RAS orientation; spacing in millimetres.
- Every writer is atomic (medlt.utils.atomic) and reads back to the same array within quantization.
- Unreadable, truncated or unsupported files raise medlt.errors.DataError naming the file.
"""

from medlt.data.io.cxr import CXR_SUFFIXES, read_cxr
from medlt.data.io.dicom import read_dicom01, write_dicom
from medlt.data.io.nifti import load_ct_hu, write_nifti
from medlt.data.io.raster import read_raster01, write_jpg, write_png


def __getattr__(name):  # the MONAI transforms import monai (slow): load them on first use
    if name in ("LoadCXRd", "LoadCTd", "CT_FIELDS"):
        from medlt.data.io import transforms

        return getattr(transforms, name)
    raise AttributeError(f"module 'medlt.data.io' has no attribute '{name}'")


__all__ = [
    "CXR_SUFFIXES", "read_cxr", "read_dicom01", "read_raster01", "write_png", "write_jpg",
    "write_dicom", "write_nifti", "load_ct_hu", "LoadCXRd", "LoadCTd", "CT_FIELDS",
]
