"""read_cxr on real DICOM files that ship inside pydicom (written by other software)."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_voi_lut

from medlt.data.io import read_cxr
from medlt.errors import DataError


def _file(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not shipped with this pydicom")
    return path


def test_ct_small_modality_lut_and_stored_range():
    path = _file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert float(ds.RescaleIntercept) == -1024 and "WindowCenter" not in ds
    a = read_cxr(path)
    assert a.shape == (128, 128) and a.dtype == np.float32
    # no VOI window: full signed 16-bit stored range through slope 1 / intercept -1024
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    lo, hi = -32768 - 1024, 32767 - 1024
    np.testing.assert_allclose(a, (hu - lo) / (hi - lo), atol=1e-6)
    # orientation: row 0 of the file is row 0 of the result
    assert np.corrcoef(a.ravel(), ds.pixel_array.ravel())[0, 1] > 0.999


def test_mr_small_voi_window_matches_pydicom():
    path = _file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    a = read_cxr(path)
    # independent reference: pydicom's own windowing, rescaled from its output range
    ref = apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
    lo, hi = -(2 ** 15), 2 ** 15 - 1  # pydicom's output range for signed 16-bit
    np.testing.assert_allclose(a, (ref - lo) / (hi - lo), atol=1e-4)
    assert a.std() > 0.1 and a.max() == pytest.approx(1.0)  # the window gives real contrast


def test_rle_file_decodes_like_uncompressed():
    a = read_cxr(_file("MR_small.dcm"))
    b = read_cxr(_file("MR_small_RLE.dcm"))
    assert pydicom.dcmread(_file("MR_small_RLE.dcm")).file_meta.TransferSyntaxUID == \
        pydicom.uid.RLELossless
    np.testing.assert_array_equal(a, b)


def test_color_jpeg_baseline_file_becomes_luminance():
    path = _file("SC_rgb_jpeg_dcmtk.dcm")
    a = read_cxr(path)
    rgb = pydicom.dcmread(path).pixel_array.astype(np.float64) / 255
    assert a.shape == rgb.shape[:2]
    np.testing.assert_allclose(a, rgb @ [0.299, 0.587, 0.114], atol=1e-5)


def test_jpeg_ls_decodes_or_names_the_syntax():
    """JPEG-LS needs an optional plugin: with it the image equals the uncompressed one, without it
    the error names the file and the transfer syntax (never a silent wrong image)."""
    path = _file("MR_small_jpeg_ls_lossless.dcm")
    try:
        a = read_cxr(path)
    except DataError as e:
        assert str(path) in str(e) and "JPEG-LS" in str(e)
    else:
        np.testing.assert_array_equal(a, read_cxr(_file("MR_small.dcm")))


def test_truncated_real_file_is_a_data_error():
    path = _file("MR_truncated.dcm")
    with pytest.raises(DataError, match="MR_truncated.dcm"):
        read_cxr(path)


def test_multiframe_file_is_a_data_error():
    path = _file("rtdose.dcm")
    with pytest.raises(DataError, match="rtdose.dcm.*2D"):
        read_cxr(path)


def test_file_without_pixel_data_is_a_data_error():
    path = _file("rtplan.dcm")
    with pytest.raises(DataError, match="rtplan.dcm.*no pixel data"):
        read_cxr(path)


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm",
                                  "MR_small_padded.dcm"])
def test_other_syntaxes_of_the_same_image_read_identically(name):
    """Big endian, implicit VR and padded encodings of MR_small read to the very same image."""
    np.testing.assert_array_equal(read_cxr(_file(name)), read_cxr(_file("MR_small.dcm")))


def test_jpeg2000_file_reads_or_names_the_syntax():
    path = _file("JPEG2000.dcm")
    try:
        a = read_cxr(path)
    except DataError as e:  # Pillow built without OpenJPEG
        assert "JPEG2000.dcm" in str(e) and "JPEG 2000" in str(e)
    else:
        ds = pydicom.dcmread(path)
        assert a.shape == ds.pixel_array.shape
        # no VOI window: the full signed 16-bit stored range, so a linear map of the stored values
        expected = (ds.pixel_array.astype(np.float64) + 32768) / 65535
        np.testing.assert_allclose(a, expected, atol=1e-6)
