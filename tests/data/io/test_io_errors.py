"""Every read error path raises DataError naming the file."""

import numpy as np
import pytest

from medlt.data.io import read_cxr, write_dicom, write_jpg, write_png
from medlt.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore:End of file reached before delimiter")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.png.*not found"):
        read_cxr(tmp_path / "nope.png")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "a.tif").write_bytes(b"x")
    with pytest.raises(DataError, match=r"a\.tif.*unsupported"):
        read_cxr(tmp_path / "a.tif")


@pytest.mark.parametrize("name", ["junk.png", "junk.jpg", "junk.dcm"])
def test_wrong_content(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(DataError, match=name):
        read_cxr(tmp_path / name)


@pytest.mark.parametrize("writer,name", [(write_png, "t.png"), (write_jpg, "t.jpg")])
def test_truncated_raster(tmp_path, pattern, writer, name):
    big = np.kron(pattern, np.ones((4, 4)))  # enough bytes that truncation hits pixel data
    p = writer(tmp_path / name, big)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=name):
        read_cxr(p)


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(DataError, match="e.png"):
        read_cxr(tmp_path / "e.png")


@pytest.mark.parametrize("syntax", ["explicit", "rle", "jpeg-baseline"])
def test_truncated_dicom(tmp_path, pattern, syntax):
    p = write_dicom(tmp_path / "t.dcm", pattern, synthetic=False,
                    meta={"transfer_syntax": syntax})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 600])
    with pytest.raises(DataError, match="t.dcm"):
        read_cxr(p)


def test_png_named_dcm(tmp_path, pattern):
    p = write_png(tmp_path / "a.png", pattern)
    (tmp_path / "a.dcm").write_bytes(p.read_bytes())
    with pytest.raises(DataError, match="a.dcm.*not a DICOM"):
        read_cxr(tmp_path / "a.dcm")


def test_unsupported_photometric(tmp_path, pattern):
    import pydicom

    p = write_dicom(tmp_path / "p.dcm", pattern, synthetic=True)
    ds = pydicom.dcmread(p)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.save_as(p)
    with pytest.raises(DataError, match="p.dcm.*PALETTE COLOR"):
        read_cxr(p)
