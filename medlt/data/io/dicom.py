"""DICOM chest radiographs: reading to [0, 1] and writing (synthetic or scanner-like) files.

Reading (`read_dicom01`):
1. pixel data decoded by pydicom (native: uncompressed, RLE Lossless, deflate; Pillow: JPEG
   Baseline 8-bit, JPEG 2000 when Pillow has OpenJPEG);
2. modality LUT (RescaleSlope/RescaleIntercept or ModalityLUTSequence) via
   `pydicom.pixels.apply_modality_lut`;
3. VOI: the first WindowCenter/WindowWidth pair (VOILUTFunction LINEAR, LINEAR_EXACT or
   SIGMOID, DICOM PS3.3 C.11.2.1.2) mapped straight to [0, 1]; a VOILUTSequence through
   `pydicom.pixels.apply_voi_lut` scaled by its output range; without either, the full stored
   range (BitsStored, PixelRepresentation) mapped through the modality LUT;
4. MONOCHROME1 inverted (1 - x); colour images converted to luminance.

Writing (`write_dicom`): see its docstring.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from pathlib import Path

import numpy as np

from medlt.errors import DataError
from medlt.utils.atomic import atomic_path

#: DICOM Secondary Capture Image Storage: what medlt's synthetic images are
SECONDARY_CAPTURE_SOP = "1.2.840.10008.5.1.4.1.1.7"
#: Digital X-Ray Image Storage - For Presentation: what the phantom's "scanner" files are
DX_PRESENTATION_SOP = "1.2.840.10008.5.1.4.1.1.1.1"
#: transfer syntaxes write_dicom can produce (meta["transfer_syntax"])
TRANSFER_SYNTAXES = ("explicit", "rle", "jpeg-baseline")


# ----------------------------------------------------------------------------------------- read
def _window01(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """VOI window to [0, 1] (PS3.3 C.11.2.1.2 with y_min=0, y_max=1)."""
    function = (function or "LINEAR").upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"WindowWidth {width} must be > 0")
        return np.clip((x - (center - width / 2.0)) / width, 0.0, 1.0)
    if width < 1:
        raise ValueError(f"WindowWidth {width} must be >= 1 for LINEAR")
    if width == 1:
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _first(value) -> float:
    """First value of a possibly multi-valued DS/IS element."""
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue | list | tuple):
        value = value[0]
    return float(value)


def _stored_range(ds) -> tuple[float, float]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0 ** bits - 1


def dataset_to_unit(ds, arr: np.ndarray) -> np.ndarray:
    """Apply modality LUT, VOI and photometric interpretation to a decoded pixel array."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and int(ds.get("SamplesPerPixel", 1)) > 1:
        # pydicom already converted YBR to RGB; luminance (ITU-R BT.601)
        rgb = arr[..., :3].astype(np.float64)
        bits = int(ds.get("BitsStored", 8))
        lum = rgb @ np.array([0.299, 0.587, 0.114])
        return lum / (2.0 ** bits - 1)
    if arr.ndim != 2:
        raise ValueError(f"expected one 2D frame, got pixel array of shape {arr.shape} "
                         f"(NumberOfFrames={ds.get('NumberOfFrames', 1)})")
    x = apply_modality_lut(arr, ds).astype(np.float64)
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        lut_in = arr if "ModalityLUTSequence" in ds else np.round(x).astype(np.int64)  # LUTs index integers
        y = apply_voi_lut(lut_in, ds, index=0, prefer_lut=True).astype(np.float64)
        item = ds.VOILUTSequence[0]
        out_bits = int(item.LUTDescriptor[2])
        out = y / (2.0 ** out_bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        out = _window01(x, _first(ds.WindowCenter), _first(ds.WindowWidth),
                        str(ds.get("VOILUTFunction", "LINEAR")))
    else:
        lo, hi = _stored_range(ds)
        ends = apply_modality_lut(np.array([lo, hi]), ds).astype(np.float64) \
            if "ModalityLUTSequence" not in ds else np.array([float(np.min(x)), float(np.max(x))])
        lo_m, hi_m = float(ends.min()), float(ends.max())
        out = (x - lo_m) / max(hi_m - lo_m, 1e-12)
    out = np.clip(out, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    elif photometric not in ("MONOCHROME2",):
        raise ValueError(f"unsupported PhotometricInterpretation {photometric}")
    return out


def read_dicom01(path: str | Path) -> np.ndarray:
    """DICOM file -> float32 (H, W) in [0, 1] (see module docstring). DataError naming the file
    when it is not DICOM, truncated, has no pixel data, or uses a syntax nothing here decodes."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes), not a DICOM file")
    try:
        ds = pydicom.dcmread(str(path))
    except InvalidDicomError:
        # pydicom's own text advises force=True, which would only misread a non-DICOM file
        raise DataError(f"{path}: not a DICOM file (no 'DICM' prefix or file meta header)") from None
    except Exception as e:
        raise DataError(f"{path}: cannot parse DICOM ({type(e).__name__}: {e})") from None
    if "PixelData" not in ds:
        raise DataError(f"{path}: DICOM file has no pixel data")
    try:
        with warnings.catch_warnings():
            # pydicom's heuristic for a mislabelled transfer syntax also fires on valid RLE data
            # that happens to compress to exactly the uncompressed size; a successful decode is
            # what matters here, a failed one is an error below
            warnings.filterwarnings("ignore", message="The number of bytes of compressed pixel data")
            arr = ds.pixel_array
    except Exception as e:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot decode DICOM pixel data (transfer syntax {name}): "
                        f"{first}") from None
    try:
        out = dataset_to_unit(ds, arr)
    except Exception as e:
        raise DataError(f"{path}: {e}") from None
    return out.astype(np.float32)


def dicom_field_of_view(path: str | Path) -> tuple[str, tuple[float, float]] | None:
    """(keyword, (height_mm, width_mm)) of a DICOM image from its header: Rows x row spacing and
    Columns x column spacing, from PixelSpacing (patient plane) or else ImagerPixelSpacing
    (detector plane); None when the file gives neither or is unreadable."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except Exception:  # an unreadable file simply tells nothing about spacing
        return None
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(key)
        try:
            dr, dc = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if dr > 0 and dc > 0:
            return key, (rows * dr, cols * dc)
    return None


# ---------------------------------------------------------------------------------------- write
#: meta keys write_dicom(synthetic=True) accepts (none of them identifies anyone)
SYNTHETIC_META_KEYS = {"ViewPosition", "ImageComments", "SeriesDescription", "PixelSpacing",
                       "ImagerPixelSpacing", "BodyPartExamined", "Modality", "ContentLabel",
                       "DerivationDescription"}
#: field of view (mm) the phantom's "scanner" files claim when no spacing is given: a 43 cm
#: detector across the longer side, so the pixel spacing follows the image size
DX_DEFAULT_FIELD_MM = 430.0
#: meta keys write_dicom(synthetic=False) understands beyond plain DICOM keywords
_CONTROL_KEYS = {"transfer_syntax", "photometric", "bits_stored", "rescale_slope",
                 "rescale_intercept", "uid_seed"}


def _quantize(img01: np.ndarray, bits: int, photometric: str) -> np.ndarray:
    img = np.asarray(img01, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) image, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise ValueError("image contains non-finite values")
    top = 2 ** bits - 1
    v = np.round(np.clip(img, 0.0, 1.0) * top)
    if photometric == "MONOCHROME1":
        v = top - v
    return v.astype(np.uint8 if bits <= 8 else np.uint16)


def _ds_str(x: float) -> str:
    """A DS value (<= 16 characters)."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return s if len(s) <= 16 else f"{x:.8g}"


def _code(value: str, scheme: str, meaning: str):
    import pydicom

    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _dx_required(ds, photometric: str) -> None:
    """Attributes the DX For Presentation IOD requires (PS3.3 A.26) that a chest file has no
    better value for: chest anatomy, unpaired laterality, linear intensity, an empty
    acquisition context; meta keys may still override them."""
    ds.PositionReferenceIndicator = ""
    ds.AnatomicRegionSequence = [_code("43799004", "SCT", "Chest")]
    ds.ImageLaterality = "U"
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    ds.BurnedInAnnotation = "NO"
    ds.DetectorType = ""
    ds.PositionerType = ""
    ds.AcquisitionContextSequence = []
    view = {"PA": ("399348003", "postero-anterior"), "AP": ("399182000", "antero-posterior"),
            "LL": ("399173006", "left lateral"), "RL": ("399067008", "right lateral")}.get(ds.ViewPosition)
    if view is not None:
        ds.ViewCodeSequence = [_code(view[0], "SCT", view[1])]


def _build(img01, *, synthetic: bool, meta: dict):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    meta = dict(meta)
    if synthetic:
        bad = sorted(set(meta) - SYNTHETIC_META_KEYS - {"uid_seed"})
        if bad:
            raise ValueError(f"write_dicom(synthetic=True) does not take {bad}: synthetic files "
                             f"carry no identifiers or scanner settings (allowed: "
                             f"{sorted(SYNTHETIC_META_KEYS)})")
        photometric, bits, slope, intercept, syntax = "MONOCHROME2", 12, 1.0, 0.0, "explicit"
        uid_seed = meta.pop("uid_seed", None)
        if uid_seed is None:  # fresh random UIDs, generation time as the dates
            uid = lambda: generate_uid()  # noqa: E731
            now = _dt.datetime.now(_dt.timezone.utc)
            date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        else:  # UIDs derived from the synthetic image's own noise seed: byte-identical re-runs
            counter = iter(range(1000))
            uid = lambda: generate_uid(entropy_srcs=["medlt-synthetic", str(uid_seed), str(next(counter))])  # noqa: E731
            date, time = "", ""  # type-2 attributes left empty rather than a fake date
    else:
        syntax = meta.pop("transfer_syntax", "explicit")
        if syntax not in TRANSFER_SYNTAXES:
            raise ValueError(f"transfer_syntax '{syntax}' not one of {TRANSFER_SYNTAXES}")
        photometric = str(meta.pop("photometric", "MONOCHROME2")).upper()
        if photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise ValueError(f"photometric '{photometric}' must be MONOCHROME1 or MONOCHROME2")
        bits = int(meta.pop("bits_stored", 8 if syntax == "jpeg-baseline" else 12))
        if syntax == "jpeg-baseline" and bits != 8:
            raise ValueError("JPEG Baseline holds 8-bit samples only (bits_stored=8)")
        if not 8 <= bits <= 16:
            raise ValueError(f"bits_stored {bits} must be in 8..16")
        slope = float(meta.pop("rescale_slope", 1.0))
        intercept = float(meta.pop("rescale_intercept", 0.0))
        if slope <= 0:
            raise ValueError(f"rescale_slope {slope} must be > 0")
        uid_seed = meta.pop("uid_seed", None)
        counter = iter(range(1000))
        if uid_seed is None:
            uid = lambda: generate_uid()  # noqa: E731
        else:  # deterministic UIDs (phantoms must be byte-identical for a seed)
            uid = lambda: generate_uid(entropy_srcs=[str(uid_seed), str(next(counter))])  # noqa: E731
        date, time = str(meta.pop("StudyDate", "21000101")), str(meta.pop("StudyTime", "120000"))

    pixels = _quantize(img01, bits, photometric)
    rows, cols = pixels.shape
    sop_class = SECONDARY_CAPTURE_SOP if synthetic else DX_PRESENTATION_SOP

    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = pydicom.Dataset()
    ds.file_meta = fm
    ds.SOPClassUID = sop_class
    study_uid, series_uid, sop_uid = uid(), uid(), uid()
    fm.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = sop_uid, study_uid, series_uid
    frame_uid = uid()
    if not synthetic:  # the Secondary Capture IOD has no Frame of Reference module
        ds.FrameOfReferenceUID = frame_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientOrientation = ["L", "F"]  # PA chest: columns run to patient's left, rows to feet
    if synthetic:
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ConversionType = "SYN"
        ds.PatientName = "SYNTHETIC^MEDLT"
        ds.PatientID = "SYNTHETIC-" + sop_uid.rsplit(".", 1)[-1][-12:]
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.StudyID = "SYNTHETIC"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = "medlt (synthetic image generator)"
        ds.SeriesDescription = "SYNTHETIC"
        ds.ImageComments = "SYNTHETIC image generated by medlt; not a patient image"
        ds.BurnedInAnnotation = "NO"
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "SYNTHETIC: no patient data"
        for key, value in meta.items():
            if key == "SeriesDescription" and "SYNTHETIC" not in str(value).upper():
                value = f"SYNTHETIC {value}"
            setattr(ds, key, value)
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.PatientName = str(meta.pop("PatientName", "PHANTOM^PATIENT"))
        ds.PatientID = str(meta.pop("PatientID", "0"))
        ds.PatientBirthDate = ""
        ds.PatientSex = str(meta.pop("PatientSex", "O"))
        ds.StudyID = str(meta.pop("StudyID", "1"))
        ds.AccessionNumber = str(meta.pop("AccessionNumber", ""))
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = str(meta.pop("Manufacturer", "medlt phantom scanner"))
        ds.SeriesDescription = str(meta.pop("SeriesDescription", "CHEST"))
        ds.ViewPosition = str(meta.pop("ViewPosition", "PA"))
        ds.PresentationIntentType = "FOR PRESENTATION"
        _dx_required(ds, photometric)
        from pydicom.datadict import tag_for_keyword

        unknown = sorted(k for k in meta if tag_for_keyword(k) is None)
        if unknown:
            raise ValueError(f"meta keys {unknown} are neither DICOM keywords nor write_dicom "
                             f"controls {sorted(_CONTROL_KEYS)}")
        for key, value in meta.items():
            setattr(ds, key, value)

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.RescaleSlope = _ds_str(slope)
    ds.RescaleIntercept = _ds_str(intercept)
    ds.RescaleType = "US"
    # VOI window covering exactly the written range, so readers map stored values back to [0, 1]
    top = 2 ** bits - 1
    ds.WindowCenter = _ds_str(intercept + 0.5 + slope * top / 2.0)
    ds.WindowWidth = _ds_str(slope * top + 1.0)
    ds.VOILUTFunction = "LINEAR"
    if not synthetic and "PixelSpacing" not in ds and "ImagerPixelSpacing" not in ds:
        spacing = _ds_str(DX_DEFAULT_FIELD_MM / max(rows, cols))
        ds.ImagerPixelSpacing = [spacing, spacing]
    for key in ("PixelSpacing", "ImagerPixelSpacing"):  # DS values, row spacing first
        if key in ds:
            ds[key].value = [_ds_str(float(v)) for v in ds[key].value]
    ds.LossyImageCompression = "01" if syntax == "jpeg-baseline" else "00"

    if syntax == "jpeg-baseline":
        import io

        from PIL import Image
        from pydicom.encaps import encapsulate
        from pydicom.uid import JPEGBaseline8Bit

        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.LossyImageCompressionRatio = _ds_str(pixels.nbytes / max(len(buf.getvalue()), 1))
    else:
        ds.PixelData = pixels.tobytes()
        ds["PixelData"].VR = "OW" if ds.BitsAllocated == 16 else "OB"
        if syntax == "rle":
            from pydicom.uid import RLELossless

            ds.compress(RLELossless, pixels, encoding_plugin="pydicom", generate_instance_uid=False)
    return ds


def write_dicom(path: str | Path, img01: np.ndarray, *, synthetic: bool,
                meta: dict | None = None) -> Path:
    """Atomically write a single-frame grayscale chest DICOM from a [0, 1] (H, W) image.

    synthetic=True (what `medlt synth` writes): Secondary Capture, fresh UIDs (random, or derived
    from `meta["uid_seed"]`, the synthetic image's noise seed, so re-runs are byte-identical), ImageType
    DERIVED\\SECONDARY, SeriesDescription/ImageComments containing SYNTHETIC, PatientName
    SYNTHETIC^MEDLT, a SYNTHETIC-... PatientID, no identifier from anywhere else, MONOCHROME2,
    12-bit unsigned in 16-bit words, slope 1 / intercept 0 and a VOI window covering the stored
    range, no Frame of Reference. `meta` may only hold non-identifying keys (SYNTHETIC_META_KEYS),
    e.g. ViewPosition, ImageComments, and a PixelSpacing or ImagerPixelSpacing (row, column mm)
    known from the source data; without one the file claims no spacing at all.

    synthetic=False (the phantom's "scanner" files): DX For Presentation with realistic tags.
    `meta` holds DICOM keywords (PatientID, PatientName, StudyID, ViewPosition, StudyDate, ...)
    and these controls: transfer_syntax ("explicit" | "rle" | "jpeg-baseline"), photometric
    ("MONOCHROME1" | "MONOCHROME2"), bits_stored (8..16; 8 for JPEG), rescale_slope,
    rescale_intercept, uid_seed (deterministic UIDs; otherwise random). Without a PixelSpacing or
    ImagerPixelSpacing the file claims ImagerPixelSpacing = DX_DEFAULT_FIELD_MM / max(Rows, Columns).

    Every file carries WindowCenter/WindowWidth that map the stored range back to [0, 1], so
    read_cxr(path) equals img01 within 1/(2**bits_stored - 1) (plus JPEG loss for jpeg-baseline).
    """
    try:
        ds = _build(img01, synthetic=synthetic, meta=meta or {})
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    with atomic_path(path, fsync=False) as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)
    return Path(path)
