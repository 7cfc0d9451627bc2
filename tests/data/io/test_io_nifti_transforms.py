"""NIfTI writer/reader and the MONAI load transforms (LoadCXRd, LoadCTd)."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medlt.data.io import LoadCTd, LoadCXRd, load_ct_hu, write_dicom, write_nifti, write_png
from medlt.errors import DataError

META = {"spacing_x": 0.75, "spacing_y": 0.8, "spacing_z": 1.5, "rescale_slope": 1.0,
        "rescale_intercept": -1024.0}


@pytest.fixture
def raw_volume():
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 2000, size=(12, 10, 6)).astype(np.int16)
    vol[0, 0, 0] = 3000  # marks the (x0, y0, z0) corner
    return vol


def test_write_nifti_header_and_determinism(tmp_path, raw_volume):
    p = write_nifti(tmp_path / "v.nii.gz", raw_volume, (2.0, 3.0, 4.0), descrip="SYNTHETIC test")
    img = nib.load(p)
    assert img.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(img.dataobj), raw_volume)
    np.testing.assert_allclose(img.header.get_zooms(), (2.0, 3.0, 4.0))
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    assert img.header["descrip"].item().startswith(b"SYNTHETIC")
    gzip.decompress(p.read_bytes())  # real gzip
    q = write_nifti(tmp_path / "w.nii.gz", raw_volume, (2.0, 3.0, 4.0), descrip="SYNTHETIC test")
    assert p.read_bytes() == q.read_bytes()
    f = write_nifti(tmp_path / "f.nii", raw_volume.astype(np.float64) - 0.5, (1, 1, 1), descrip="f")
    assert nib.load(f).get_data_dtype() == np.float32


def test_load_ct_replaces_spacing_and_hu(tmp_path, raw_volume):
    # header spacing deliberately wrong (like CT-RATE): 1 x 1 x 1
    p = write_nifti(tmp_path / "v.nii.gz", raw_volume, (1.0, 1.0, 1.0), descrip="raw")
    out = LoadCTd(keys="image")({"image": str(p), **META})
    t = out["image"]
    assert isinstance(t, MetaTensor) and t.shape == (1, 12, 10, 6) and t.dtype == torch.float32
    np.testing.assert_allclose(t[0].numpy(), raw_volume.astype(np.float32) - 1024.0)
    np.testing.assert_allclose(np.diag(t.affine.numpy())[:3], [0.75, 0.8, 1.5])
    np.testing.assert_allclose(t.meta["pixdim"][1:4], [0.75, 0.8, 1.5])
    # slope != 1
    out2 = LoadCTd(keys="image")({"image": str(p), **{**META, "rescale_slope": 2.0}})
    np.testing.assert_allclose(out2["image"][0].numpy(), raw_volume * 2.0 - 1024.0)


def test_load_ct_reorients_lps_header_to_ras(tmp_path, raw_volume):
    """A non-identity (LPS, flipped x and y) affine: the result is RAS, data flipped to match."""
    aff = np.diag([-2.0, -2.0, 3.0, 1.0])
    aff[:3, 3] = [10.0, 20.0, -5.0]
    p = write_nifti(tmp_path / "lps.nii.gz", raw_volume, (2, 2, 3), descrip="lps", affine=aff)
    assert nib.aff2axcodes(nib.load(p).affine) == ("L", "P", "S")
    t = load_ct_hu(p, (0.7, 0.7, 1.25), 1.0, 0.0)
    np.testing.assert_allclose(t[0].numpy(), raw_volume[::-1, ::-1, :])
    assert t[0, -1, -1, 0] == 3000  # the marked corner moved to the flipped end
    a = t.affine.numpy()
    np.testing.assert_allclose(np.diag(a)[:3], [0.7, 0.7, 1.25])
    assert nib.aff2axcodes(a) == ("R", "A", "S")


def test_load_ct_oblique_header_keeps_directions(tmp_path, raw_volume):
    c, s = np.cos(0.3), np.sin(0.3)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) * [3.0, 3.0, 5.0]
    p = write_nifti(tmp_path / "obl.nii.gz", raw_volume, (3, 3, 5), descrip="o", affine=aff)
    t = load_ct_hu(p, (0.5, 0.6, 2.0), 1.0, -1024.0)
    np.testing.assert_allclose(np.linalg.norm(t.affine.numpy()[:3, :3], axis=0), [0.5, 0.6, 2.0])


@pytest.mark.parametrize("field", ["spacing_x", "spacing_z", "rescale_slope", "rescale_intercept"])
def test_load_ct_missing_field(tmp_path, raw_volume, field):
    p = write_nifti(tmp_path / "v.nii.gz", raw_volume, (1, 1, 1), descrip="raw")
    d = {"image": str(p), **META}
    del d[field]
    with pytest.raises(DataError, match=f"v.nii.gz.*{field}"):
        LoadCTd(keys="image")(d)
    d[field] = float("nan")
    with pytest.raises(DataError, match="v.nii.gz"):
        LoadCTd(keys="image")(d)


def test_load_ct_bad_values_and_files(tmp_path, raw_volume):
    p = write_nifti(tmp_path / "v.nii.gz", raw_volume, (1, 1, 1), descrip="raw")
    with pytest.raises(DataError, match="v.nii.gz.*spacing"):
        LoadCTd(keys="image")({"image": str(p), **{**META, "spacing_y": "abc"}})
    with pytest.raises(DataError, match="v.nii.gz.*spacing"):
        LoadCTd(keys="image")({"image": str(p), **{**META, "spacing_y": -1}})
    with pytest.raises(DataError, match="gone.nii.gz.*not found"):
        LoadCTd(keys="image")({"image": str(tmp_path / "gone.nii.gz"), **META})
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti file at all")
    with pytest.raises(DataError, match="junk.nii.gz"):
        LoadCTd(keys="image")({"image": str(tmp_path / "junk.nii.gz"), **META})
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match="trunc.nii.gz"):
        LoadCTd(keys="image")({"image": str(trunc), **META})


def test_write_nifti_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="X, Y, Z"):
        write_nifti(tmp_path / "a.nii.gz", np.zeros((3, 3)), (1, 1, 1), descrip="x")
    with pytest.raises(ValueError, match="spacing"):
        write_nifti(tmp_path / "a.nii.gz", np.zeros((3, 3, 3)), (1, 0, 1), descrip="x")
    with pytest.raises(ValueError, match="int16"):
        write_nifti(tmp_path / "a.nii.gz", np.full((2, 2, 2), 40000), (1, 1, 1), descrip="x")
    assert not list(tmp_path.iterdir())


def test_load_cxrd_all_formats(tmp_path, pattern):
    paths = [write_png(tmp_path / "a.png", pattern),
             write_dicom(tmp_path / "a.dcm", pattern, synthetic=False,
                         meta={"photometric": "MONOCHROME1", "transfer_syntax": "rle"})]
    for p in paths:
        out = LoadCXRd(keys=["image"])({"image": str(p), "label": 3})
        t = out["image"]
        assert isinstance(t, MetaTensor) and t.shape == (1, 40, 56) and t.dtype == torch.float32
        assert 0 <= float(t.min()) and float(t.max()) <= 1
        assert np.abs(t[0].numpy() - pattern).max() < 0.003
        assert t.meta["filename_or_obj"] == str(p) and out["label"] == 3
    with pytest.raises(DataError, match="missing.png"):
        LoadCXRd(keys="image")({"image": str(tmp_path / "missing.png")})


def test_header_scaling_is_not_applied_twice(tmp_path, raw_volume):
    """Metadata slope/intercept apply to the stored integers even when the header has scl_*."""
    img = nib.Nifti1Image(raw_volume, np.eye(4))
    img.header.set_slope_inter(2.0, -100.0)
    nib.save(img, tmp_path / "scl.nii.gz")
    t = LoadCTd("image")({"image": str(tmp_path / "scl.nii.gz"), **META})["image"]
    np.testing.assert_allclose(t[0].numpy(), raw_volume.astype(np.float32) - 1024.0)
