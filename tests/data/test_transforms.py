"""MONAI pipelines: CXR orientation/range for every format, CT spacing/HU from metadata overriding
a wrong header, RAS orientation, crop/pad value, 2D axial mode, augmentation bounds."""

import numpy as np
import pytest
import torch

from medlt.data.loaders import build_dataset
from medlt.data.table import load_table
from medlt.data.transforms import ct_volume_transforms
from medlt.errors import RecipeError
from tests.data.builders import CT_SPLITS, recipe, write_ct_rate, write_mimic, write_nih


def _upright(img: torch.Tensor) -> bool:
    """The builders' image: bright top, dark bottom-right, bright bottom-left block."""
    h, w = img.shape[-2:]
    top, bottom = img[..., : h // 5, :].mean(), img[..., -h // 5:, w // 3:].mean()
    left, right = img[..., h // 2: h * 3 // 4, : w // 6].mean(), img[..., h // 2: h * 3 // 4, -w // 6:].mean()
    return bool(top > 0.5 and bottom < -0.5 and left > right + 0.3)


@pytest.mark.parametrize("fmt,ext", [("nih-cxr-lt", "png"), ("mimic-cxr-lt", "jpg"), ("mimic-cxr-lt", "dcm")])
def test_cxr_pipeline_same_orientation_and_range_for_every_format(tmp_path, fmt, ext):
    if fmt == "nih-cxr-lt":
        write_nih(tmp_path / "d", h=96, w=80)
        r = recipe(tmp_path, format=fmt, root=str(tmp_path / "d"), image_size=[48, 40])
    else:
        write_mimic(tmp_path / "d", tmp_path / "d", ext, h=96, w=80)
        r = recipe(tmp_path, format=fmt, root=str(tmp_path / "d"), extension=ext, image_size=[48, 40])
    ds = build_dataset(r, "train")
    for i in (0, 1):  # MIMIC dcm: row 1 is MONOCHROME1
        x = ds[i]
        assert type(x["image"]) is torch.Tensor and x["image"].dtype == torch.float32
        assert x["image"].shape == (1, 48, 40)
        assert -1.0 <= x["image"].min() and x["image"].max() <= 1.0
        assert _upright(x["image"]), f"{fmt}/{ext} item {i} is not upright"
        assert x["label"].dtype == torch.int64 and x["label"].ndim == 0 and int(x["label"]) == i
        assert x["id"] == ds.ids[i]


def test_augmentation_is_light_seeded_and_no_flip(tmp_path):
    write_nih(tmp_path / "d", h=96, w=80)
    r = recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "d"), image_size=[48, 40])
    plain = build_dataset(r, "train")[0]["image"]
    aug = build_dataset(r, "train", augment=True)
    a = [aug[0]["image"] for _ in range(6)]
    assert all(x.shape == plain.shape and x.min() >= -1 and x.max() <= 1 for x in a)
    assert any(not torch.allclose(x, plain) for x in a)  # something random happened
    assert all(_upright(x) for x in a)  # never flipped
    assert all((x - plain).abs().mean() < 0.25 for x in a)  # and only lightly
    again = build_dataset(r, "train", augment=True)
    assert torch.equal(again[0]["image"], a[0])  # seeded from recipe.seed


def _ct_recipe(tmp_path, **ct):
    ct_cfg = {"spacing_mm": [2.0, 2.0, 4.0], "crop_size": None, **ct}
    size = ct_cfg.pop("image_size", [20, 16, 10])
    return recipe(tmp_path, format="ct-rate", root=str(tmp_path / "ct"), splits=CT_SPLITS, image_size=size,
                  ct=ct_cfg)


def test_ct_hu_and_spacing_come_from_metadata_not_header(tmp_path):
    # raw 612 * slope 2 + intercept -1024 = 200 HU; header says 1 mm (wrong), metadata 2x2x4 mm
    write_ct_rate(tmp_path / "ct", value=612, slope=2.0, intercept=-1024.0)
    r = _ct_recipe(tmp_path, spacing_mm=[4.0, 4.0, 8.0], crop_size=[10, 8, 5], image_size=[10, 8, 5])
    table = load_table(r)
    item = dict(table.frame.iloc[0][["image", "spacing_x", "spacing_y", "spacing_z", "rescale_slope",
                                      "rescale_intercept"]])
    item.update(label=np.zeros(18, np.float32), id="x")
    # at 4x4x8 mm the 20x16x10 volume (2x2x4 mm) is 10x8x5 voxels: the 10x8x5 crop is all tissue.
    # With the header's 1 mm it would be 5x4x2.5 and the crop would be padded with -1.
    vol = ct_volume_transforms(r.data)(item)["image"]
    assert vol.shape == (1, 10, 8, 5)
    assert torch.allclose(vol, torch.full_like(vol, 0.2), atol=1e-4)
    # HU window clip: raw 1612 -> 2200 HU -> clipped to 1000 -> 1.0
    write_ct_rate(tmp_path / "ct", value=1612, slope=2.0, intercept=-1024.0)
    assert torch.allclose(ct_volume_transforms(r.data)(item)["image"], torch.ones(1, 10, 8, 5))


def test_ct_output_spacing_checked_through_monai_meta(tmp_path):
    from monai.transforms import Compose

    write_ct_rate(tmp_path / "ct", spacing=(2.0, 2.0, 4.0))
    r = _ct_recipe(tmp_path, spacing_mm=[4.0, 4.0, 8.0])
    item = load_table(r).frame.iloc[0].to_dict()
    pipe = ct_volume_transforms(r.data)
    upto_spacing = Compose(pipe.transforms[:3])(item)["image"]  # LoadCTd, Orientationd, Spacingd
    assert np.allclose(upto_spacing.pixdim[:3].numpy() if hasattr(upto_spacing.pixdim, "numpy")
                       else upto_spacing.pixdim[:3], [4.0, 4.0, 8.0])
    assert upto_spacing.shape[1:] == (10, 8, 6)  # 1 mm header spacing would give about (5, 4, 3)


def test_ct_ras_orientation_and_pad_value(tmp_path):
    # the header's axis 0 points LEFT and raw values increase along it: in RAS they must decrease
    write_ct_rate(tmp_path / "ct", shape=(20, 16, 10), spacing=(2.0, 2.0, 4.0), slope=1.0, intercept=-500.0)
    r = _ct_recipe(tmp_path, spacing_mm=[2.0, 2.0, 4.0], crop_size=[24, 16, 12], image_size=[24, 16, 12])
    x = build_dataset(r, "train")[0]
    vol = x["image"][0]
    assert vol.shape == (24, 16, 12)
    line = vol[2:22, 8, 6]
    assert (line[1:] < line[:-1]).all() and np.isclose(float(line[0]), 0.5, atol=1e-3)  # raw 1000-500
    assert (vol[:2] == -1).all() and (vol[22:] == -1).all() and (vol[:, :, 0] == -1).all()  # pad value -1
    assert x["label"].dtype == torch.float32 and x["label"].shape == (18,)


def test_ct_2d_axial_mode(tmp_path):
    write_ct_rate(tmp_path / "ct", counts={"train": 3, "valid": 1}, shape=(20, 16, 10))
    r = _ct_recipe(tmp_path, spacing_mm=[2.0, 2.0, 4.0], mode="2d-axial", image_size=[20, 16, 10])
    ds = build_dataset(r, "train")
    assert len(ds) == 3 * 10 and len(ds.labels) == 30 and ds.labels.shape == (30, 18)
    x = ds[13]
    assert x["id"] == "train_2_a_1.nii.gz#z3" and x["image"].shape == (1, 16, 20)  # (1, Y, X)
    vol = build_dataset(r.model_copy(update={"data": r.data.model_copy(update={"ct": r.data.ct.model_copy(
        update={"mode": "3d"})})}), "train")[1]["image"]
    # radiological display: anterior (high Y) at the top, patient's right (high X) on the left
    assert torch.equal(x["image"][0], vol[0, :, :, 3].flip(0).flip(1).T)
    assert torch.equal(x["label"], vol.new_tensor(ds.labels[13]))
    row = x["image"][0, 8]
    assert (row[1:] > row[:-1]).all()  # intensity falls toward the patient's left = image right in RAS
    aug = build_dataset(r, "train", augment=True)[13]
    assert aug["image"].shape == (1, 16, 20) and aug["image"].abs().max() <= 1


def test_ct_image_size_must_be_3d(tmp_path):
    write_ct_rate(tmp_path / "ct")
    with pytest.raises(RecipeError, match="data.image_size"):  # refused when the recipe loads
        r = recipe(tmp_path, format="ct-rate", root=str(tmp_path / "ct"), splits=CT_SPLITS, image_size=[32, 32])
        build_dataset(r, "train")
