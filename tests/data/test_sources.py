"""Each format reader on files written at test time -> the canonical table."""

import numpy as np
import pandas as pd
import pytest

from medlt.data.table import load_table
from medlt.errors import DataError, RecipeError, ValidationFailed
from tests.data.builders import CT, CT_SPLITS, MIMIC, NIH, recipe, write_ct_rate, write_mimic, write_nih

CANONICAL = ["id", "image", "patient_id", "split", "source"]


def test_nih_single_label(tmp_path):
    write_nih(tmp_path / "nih")
    t = load_table(recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "nih")))
    f = t.frame
    assert list(f.columns[:5]) == CANONICAL and list(f.columns[5:25]) == list(NIH)
    assert t.label_space.names == NIH and not t.label_space.multi_label
    assert len(f) == 36 and f["id"].is_unique
    assert set(f["split"]) == {"train", "balanced-val", "test", "balanced-test"}
    assert f["image"].iloc[0] == str(tmp_path / "nih" / "train_0000.png")
    assert (f["source"] == "real").all()
    # row k has class k mod 20: train has 24 rows -> classes 0..3 twice, the rest once
    assert t.class_counts("train") == [2, 2, 2, 2] + [1] * 16
    assert len(t.role("val")) == 4 and (t.role("test")["split"] == "balanced-test").all()
    assert t.targets(t.role("train"))[:3].tolist() == [0, 1, 2]
    assert t.targets().dtype == np.int64


def test_nih_multi_label_variant(tmp_path):
    write_nih(tmp_path / "nih", multi_label=True)
    r = recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "nih"), multi_label=True,
               splits={"train": "train", "val": "val", "test": "test", "test_longtail": None})
    t = load_table(r)
    assert t.label_space.multi_label
    y = t.targets(t.role("train"))
    assert y.dtype == np.float32 and y.shape == (24, 20)
    assert y[0].sum() == 2 and y[1].sum() == 1  # row 0 has two positives
    assert t.frame["patient_id"].iloc[0] == "train-0"


def test_nih_multi_label_with_single_label_split_names_is_named(tmp_path):
    write_nih(tmp_path / "nih", multi_label=True)
    with pytest.raises(ValidationFailed) as e:
        load_table(recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "nih"), multi_label=True))
    msg = " ".join(str(p) for p in e.value.problems)
    assert "data.splits.val = 'balanced-val'" in msg and "'val'" in msg


@pytest.mark.parametrize("ext", ["jpg", "dcm"])
def test_mimic_jpg_and_dcm(tmp_path, ext):
    write_mimic(tmp_path / "mimic", tmp_path / "labels", ext)
    t = load_table(recipe(tmp_path, format="mimic-cxr-lt", root=str(tmp_path / "mimic"),
                          labels=str(tmp_path / "labels"), extension=ext))
    f = t.frame
    assert t.label_space.names == MIMIC
    assert all(p.endswith("." + ext) for p in f["image"])
    assert all(p.startswith(str(tmp_path / "mimic" / "files" / "p10")) for p in f["image"])
    assert f["id"].iloc[0] == "d10000001-0" and f["patient_id"].iloc[0] == "10000001"
    assert t.class_counts() == [1] * 19


def test_ct_rate_metadata_fields(tmp_path):
    write_ct_rate(tmp_path / "ct", spacing=(2.0, 1.5, 4.0), slope=2.0, intercept=-1000.0)
    t = load_table(recipe(tmp_path, format="ct-rate", root=str(tmp_path / "ct"), splits=CT_SPLITS))
    f = t.frame
    assert t.modality == "ct" and t.label_space.multi_label and t.label_space.names == CT
    row = f.iloc[0]
    assert row["id"] == "train_1_a_1.nii.gz" and row["patient_id"] == "train_1"
    assert row["image"].endswith("dataset/train/train_1/train_1_a/train_1_a_1.nii.gz")
    # XYSpacing "[row, col]" = "[y, x]"
    assert (row["spacing_x"], row["spacing_y"], row["spacing_z"]) == (2.0, 1.5, 4.0)
    assert (row["rescale_slope"], row["rescale_intercept"]) == (2.0, -1000.0)
    assert set(f["split"]) == {"train", "valid"}
    assert t.class_counts("train")[:4] == [1, 1, 1, 2]


def _manifest(tmp_path, rows, classes=("A", "B", "C"), multi=False, extra=None):
    root = tmp_path / "m"
    root.mkdir(exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(root / "manifest.csv", index=False)
    return recipe(tmp_path, format="manifest", root=str(root), classes=list(classes), multi_label=multi,
                  splits={"train": "train", "val": "val", "test": "test", "test_longtail": None}, **(extra or {}))


def _mrow(i, split, cls, image=None, **kw):
    return {"image": image or f"img/{split}_{i}.png", "patient_id": f"p{split}{i}", "split": split,
            "A": int(cls == "A"), "B": int(cls == "B"), "C": int(cls == "C"), **kw}


def test_manifest_keeps_extra_columns_and_source(tmp_path):
    rows = [_mrow(0, "train", "A", seed=7, guidance_scale=2.0, source="synthetic"),
            _mrow(1, "train", "B", seed=8, guidance_scale=2.0, source="real"),
            _mrow(0, "val", "C", seed="", guidance_scale=""), _mrow(0, "test", "A", seed="", guidance_scale="")]
    t = load_table(_manifest(tmp_path, rows))
    f = t.frame
    assert list(f["source"]) == ["synthetic", "real", "real", "real"]
    assert list(f["id"]) == [r["image"] for r in rows]  # id defaults to the image path
    assert "seed" in f.columns and f["seed"].iloc[0] == "7" and "guidance_scale" in f.columns
    assert f["image"].iloc[0] == str(tmp_path / "m" / "img" / "train_0.png")
    assert t.class_counts() == [1, 1, 0]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.png", "img/../../x.png"])
def test_manifest_path_escaping_root_is_rejected(tmp_path, bad):
    rows = [_mrow(0, "train", "A"), _mrow(1, "train", "B", image=bad), _mrow(0, "val", "C"), _mrow(0, "test", "A")]
    with pytest.raises(ValidationFailed) as e:
        load_table(_manifest(tmp_path, rows))
    (p,) = e.value.problems
    assert p.code == "path-escapes-root" and p.row == 2 and p.file.endswith("manifest.csv") and bad in p.message


def test_manifest_needs_classes(tmp_path):
    with pytest.raises(RecipeError, match="data.classes"):
        load_table(recipe(tmp_path, format="manifest", root=str(tmp_path)))


def test_manifest_classes_by_format_name(tmp_path):
    rows = [{"image": "a.png", "patient_id": "p", "split": "train", **{c: int(c == "Hernia") for c in NIH}}]
    root = tmp_path / "m"
    root.mkdir()
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    t = load_table(recipe(tmp_path, format="manifest", root=str(root), classes="nih-cxr-lt",
                          splits={"train": "train", "val": "train", "test": "train", "test_longtail": None}))
    assert t.label_space.names == NIH and t.class_counts()[NIH.index("Hernia")] == 1


def test_manifest_ct_rows_need_spacing(tmp_path):
    rows = [{"image": "v1.nii.gz", "patient_id": "p1", "split": "train", "A": 1, "B": 0, "C": 0,
             "spacing_x": 1, "spacing_y": 1, "spacing_z": 2},
            {"image": "v2.nii.gz", "patient_id": "p2", "split": "train", "A": 0, "B": 1, "C": 0,
             "spacing_x": 1, "spacing_y": "", "spacing_z": 2}]
    r = _manifest(tmp_path, rows, multi=True)
    r.data.splits.val = r.data.splits.test = "train"
    with pytest.raises(ValidationFailed) as e:
        load_table(r)
    (p,) = e.value.problems
    assert p.code == "ct-no-metadata" and p.row == 2


def test_unknown_role_and_null_role(tmp_path):
    write_ct_rate(tmp_path / "ct")
    t = load_table(recipe(tmp_path, format="ct-rate", root=str(tmp_path / "ct"), splits=CT_SPLITS))
    with pytest.raises(DataError, match="test_longtail"):
        t.role("test_longtail")
    with pytest.raises(DataError, match="unknown data role"):
        t.role("training")


def test_view_positions_filter_from_release_metadata(tmp_path):
    write_nih(tmp_path / "nih")
    r = recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "nih"), view_positions=["PA"])
    with pytest.raises(ValidationFailed, match="Data_Entry_2017_v2020.csv"):
        load_table(r)
    ids = pd.concat([pd.read_csv(p, dtype=str) for p in (tmp_path / "nih").glob("nih-*.csv")])["id"]
    views = ["AP" if i.endswith(("1.png", "3.png")) else "PA" for i in ids]
    pd.DataFrame({"Image Index": ids, "View Position": views, "Patient ID": "x"}).to_csv(
        tmp_path / "nih" / "Data_Entry_2017_v2020.csv", index=False)
    t = load_table(r)
    assert len(t.frame) == 36 - views.count("AP") and not t.frame["id"].str.endswith("1.png").any()
    with pytest.raises(RecipeError, match="view_positions"):
        write_ct_rate(tmp_path / "ct")
        load_table(recipe(tmp_path, format="ct-rate", root=str(tmp_path / "ct"), splits=CT_SPLITS,
                          view_positions=["PA"]))
