"""Every writer -> reader round trip, on real files written here, and orientation consistency."""

import numpy as np
import pydicom
import pytest

from medlt.data.io import read_cxr, write_dicom, write_jpg, write_png


def _assert_same_orientation(a, ref):
    """The read image matches the pattern and none of its flips/transposes would."""
    err = np.abs(a - ref).mean()
    assert err < 0.02
    for alt in (ref[::-1], ref[:, ::-1], ref[::-1, ::-1]):
        assert np.abs(a - alt).mean() > 5 * err + 0.05
    # top-left bar bright, bottom-right square dark
    assert a[2:6, 3:30].mean() > 0.95 and a[30:38, 44:52].mean() < 0.05


def test_png_roundtrip_8bit(tmp_path, pattern):
    p = write_png(tmp_path / "a.png", pattern)
    a = read_cxr(p)
    assert a.dtype == np.float32 and a.shape == pattern.shape
    assert np.abs(a - pattern).max() <= 0.5 / 255 + 1e-6
    _assert_same_orientation(a, pattern)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


def test_png_16bit_and_rgb_are_scaled(tmp_path, pattern):
    from PIL import Image

    Image.fromarray(np.round(pattern * 65535).astype(np.uint16)).save(tmp_path / "b.png")
    a = read_cxr(tmp_path / "b.png")
    assert np.abs(a - pattern).max() < 1e-4
    rgb = np.repeat(np.round(pattern * 255).astype(np.uint8)[..., None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert np.abs(read_cxr(tmp_path / "c.png") - pattern).max() <= 0.5 / 255 + 1e-6


def test_jpg_roundtrip(tmp_path, pattern):
    for name in ("a.jpg", "a.jpeg"):
        a = read_cxr(write_jpg(tmp_path / name, pattern, quality=95))
        assert a.shape == pattern.shape
        assert np.abs(a - pattern).mean() < 0.01
        _assert_same_orientation(a, pattern)


@pytest.mark.parametrize("syntax", ["explicit", "rle", "jpeg-baseline"])
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_scanner_dicom_roundtrip(tmp_path, pattern, syntax, photometric):
    bits = 8 if syntax == "jpeg-baseline" else 12
    slope, intercept = (1.0, 0.0) if syntax == "jpeg-baseline" else (0.5, -1024.0)
    meta = dict(transfer_syntax=syntax, photometric=photometric, bits_stored=bits,
                rescale_slope=slope, rescale_intercept=intercept, PatientID="12345",
                ViewPosition="AP", uid_seed="t")
    p = write_dicom(tmp_path / "x.dcm", pattern, synthetic=False, meta=meta)
    ds = pydicom.dcmread(p)
    want_ts = {"explicit": pydicom.uid.ExplicitVRLittleEndian, "rle": pydicom.uid.RLELossless,
               "jpeg-baseline": pydicom.uid.JPEGBaseline8Bit}[syntax]
    assert ds.file_meta.TransferSyntaxUID == want_ts
    assert ds.PhotometricInterpretation == photometric
    assert (ds.Rows, ds.Columns, ds.BitsStored) == (40, 56, bits)
    assert float(ds.RescaleSlope) == slope and float(ds.RescaleIntercept) == intercept
    assert ds.PatientID == "12345" and ds.ViewPosition == "AP"
    raw = ds.pixel_array.astype(float)
    if photometric == "MONOCHROME1":  # stored values really are inverted: the bar is dark on disk
        assert raw[2:6, 3:30].mean() < raw[30:38, 44:52].mean()
    a = read_cxr(p)
    tol = 0.5 / (2 ** bits - 1) + 1e-6
    if syntax == "jpeg-baseline":
        assert np.abs(a - pattern).mean() < 0.01
    else:
        assert np.abs(a - pattern).max() <= tol
    _assert_same_orientation(a, pattern)


def test_scanner_dicom_uids_deterministic_with_seed(tmp_path, pattern):
    meta = dict(PatientID="7", uid_seed=42)
    write_dicom(tmp_path / "a.dcm", pattern, synthetic=False, meta=meta)
    write_dicom(tmp_path / "b.dcm", pattern, synthetic=False, meta=meta)
    assert (tmp_path / "a.dcm").read_bytes() == (tmp_path / "b.dcm").read_bytes()


def test_synthetic_dicom_is_marked_and_reads_back(tmp_path, pattern):
    p1 = write_dicom(tmp_path / "s1.dcm", pattern, synthetic=True, meta={"ViewPosition": "PA"})
    p2 = write_dicom(tmp_path / "s2.dcm", pattern, synthetic=True)
    d1, d2 = pydicom.dcmread(p1), pydicom.dcmread(p2)
    for ds in (d1, d2):
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert "SYNTHETIC" in ds.SeriesDescription
        assert "SYNTHETIC" in str(ds.PatientName) and ds.PatientID.startswith("SYNTHETIC")
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored) == (40, 56, 16, 12)
        assert float(ds.RescaleSlope) == 1 and float(ds.RescaleIntercept) == 0
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID
    assert d1.ViewPosition == "PA"
    # fresh UIDs every time
    for key in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        assert getattr(d1, key) != getattr(d2, key)
    assert d1.PatientID != d2.PatientID
    assert np.abs(read_cxr(p1) - pattern).max() <= 0.5 / 4095 + 1e-6
    # the raw bytes start with the DICOM preamble + magic (valid Part 10 file)
    assert p1.read_bytes()[128:132] == b"DICM"


def test_synthetic_dicom_refuses_identifiers(tmp_path, pattern):
    with pytest.raises(ValueError, match="PatientID"):
        write_dicom(tmp_path / "s.dcm", pattern, synthetic=True, meta={"PatientID": "real-123"})
    assert not (tmp_path / "s.dcm").exists()


def test_writers_reject_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="2D"):
        write_png(tmp_path / "a.png", np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        write_jpg(tmp_path / "a.jpg", np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="2D"):
        write_dicom(tmp_path / "a.dcm", np.zeros(5), synthetic=True)
    with pytest.raises(ValueError, match="transfer_syntax"):
        write_dicom(tmp_path / "a.dcm", np.zeros((4, 4)), synthetic=False,
                    meta={"transfer_syntax": "jpeg2000"})
    with pytest.raises(ValueError, match="Patient_Id"):
        write_dicom(tmp_path / "a.dcm", np.zeros((4, 4)), synthetic=False, meta={"Patient_Id": "x"})
    assert not list(tmp_path.iterdir())


def test_formats_agree_with_each_other(tmp_path, pattern):
    """The same picture saved as PNG, JPG and DICOM (both photometrics) reads the same."""
    reads = [read_cxr(write_png(tmp_path / "a.png", pattern)),
             read_cxr(write_jpg(tmp_path / "a.jpg", pattern)),
             read_cxr(write_dicom(tmp_path / "a.dcm", pattern, synthetic=True)),
             read_cxr(write_dicom(tmp_path / "b.dcm", pattern, synthetic=False,
                                  meta={"photometric": "MONOCHROME1"}))]
    for r in reads[1:]:
        assert r.shape == reads[0].shape
        assert np.abs(r - reads[0]).mean() < 0.01


def test_voi_lut_sequence_is_applied(tmp_path, pattern):
    """A VOILUTSequence (here: an inverting LUT) takes precedence over the missing window."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    p = write_dicom(tmp_path / "lut.dcm", pattern, synthetic=False, meta={"bits_stored": 12})
    ds = pydicom.dcmread(p)
    del ds.WindowCenter, ds.WindowWidth
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = [int(round((1 - v / 4095) * 65535)) for v in range(4096)]
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(p)
    np.testing.assert_allclose(read_cxr(p), 1.0 - pattern, atol=0.5 / 4095 + 1e-5)


def test_no_window_uses_full_stored_range(tmp_path, pattern):
    p = write_dicom(tmp_path / "nw.dcm", pattern, synthetic=False,
                    meta={"bits_stored": 12, "rescale_slope": 2.0, "rescale_intercept": -100.0})
    ds = pydicom.dcmread(p)
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(p)
    # stored 0..4095 -> modality -100..8090 -> [0, 1]: same picture as with the window
    np.testing.assert_allclose(read_cxr(p), pattern, atol=0.5 / 4095 + 1e-5)


@pytest.mark.parametrize("meta", [{}, {"transfer_syntax": "rle", "photometric": "MONOCHROME1", "ViewPosition": "AP"},
                                  {"transfer_syntax": "jpeg-baseline", "bits_stored": 8}])
def test_scanner_dicom_passes_dciodvfy(tmp_path, meta):
    """The phantom's DX For Presentation files carry every attribute the IOD requires (checked by
    dciodvfy from Debian's dicom3tools when it is installed; pydicom's strict reading otherwise)."""
    import shutil
    import subprocess

    import pydicom
    from pydicom import config

    p = write_dicom(tmp_path / "dx.dcm", np.linspace(0, 1, 24 * 16).reshape(24, 16), synthetic=False,
                    meta={"uid_seed": 1, **meta})
    old = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE
    try:
        ds = pydicom.dcmread(p)
        assert ds.ImageLaterality == "U" and ds.AnatomicRegionSequence[0].CodeMeaning == "Chest"
        assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(430 / 24, abs=1e-6)
    finally:
        config.settings.reading_validation_mode = old
    exe = shutil.which("dciodvfy")
    if exe is not None:
        res = subprocess.run([exe, str(p)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], errors
