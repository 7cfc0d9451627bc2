"""Layouts and CSV schemas exactly as the official releases; counts; patient-disjoint splits."""

import re

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from medlt.data.io import LoadCTd, read_cxr
from medlt.data.labels import official_classes
from medlt.phantom.ct_layout import ct_class_counts
from medlt.phantom.plan import train_counts


def _patients_disjoint(frames: dict[str, pd.DataFrame], col: str):
    seen = {}
    for split, df in frames.items():
        for p in set(df[col]):
            assert p not in seen, f"patient {p} in {seen[p]} and {split}"
            seen[p] = split


def test_nih_single_label_layout(nih_dir, small):
    root = nih_dir.out_dir
    classes = list(official_classes("nih-cxr-lt"))
    frames = {}
    for split in ("train", "balanced-val", "test", "balanced-test"):
        df = pd.read_csv(root / f"nih-cxr-lt_single-label_{split}.csv")
        assert list(df.columns) == ["id", *classes, "subject_id"]
        assert (df[classes].sum(axis=1) == 1).all()  # single-label: exactly one positive
        assert df["id"].str.fullmatch(r"\d{8}_\d{3}\.png").all()
        frames[split] = df
    assert sorted(p.name for p in root.glob("*.png")) == sorted(pd.concat(frames.values())["id"])
    train = frames["train"][classes].sum().tolist()
    assert train == train_counts(small["num_images"], 20, small["imbalance_ratio"])
    assert frames["balanced-val"][classes].sum().tolist() == [2] * 20
    assert frames["balanced-test"][classes].sum().tolist() == [3] * 20
    _patients_disjoint(frames, "subject_id")
    all_rows = pd.concat(frames.values())
    assert all_rows.groupby("subject_id").size().max() > 1  # several images per patient sometimes
    # the id prefix is the patient, the suffix the image number
    assert (all_rows["id"].str[:8].astype(int) == all_rows["subject_id"]).all()
    img = read_cxr(root / frames["train"]["id"].iloc[0])
    assert img.shape == (32, 32)


def test_nih_multi_label_layout(nih_multi_dir):
    root = nih_multi_dir.out_dir
    classes = list(official_classes("nih-cxr-lt"))
    frames = {}
    for split in ("train", "val", "test"):
        df = pd.read_csv(root / f"miccai2023_nih-cxr-lt_labels_{split}.csv")
        assert list(df.columns) == ["id", *classes, "subj_id"]
        frames[split] = df
    assert not list(root.glob("nih-cxr-lt_single-label_*.csv"))
    train = frames["train"]
    n = train[classes].sum(axis=1)
    assert (n >= 1).all() and (n > 1).any()
    assert (n[train["No Finding"] == 1] == 1).all()  # "No Finding" is never combined
    _patients_disjoint(frames, "subj_id")


MIMIC_PATH = re.compile(r"files/p(\d{2})/p(\d{8})/s(\d{8})/([0-9a-f]{8}(?:-[0-9a-f]{8}){4})\.jpg")


def test_mimic_layout_and_dicoms(mimic_dir, small):
    root = mimic_dir.out_dir
    classes = list(official_classes("mimic-cxr-lt"))
    frames = {}
    for split in ("train", "balanced-val", "test", "balanced-test"):
        df = pd.read_csv(root / f"mimic-cxr-lt_single-label_{split}.csv", dtype={"dicom_id": str})
        assert list(df.columns) == ["subject_id", "study_id", "dicom_id", "path", *classes]
        assert (df[classes].sum(axis=1) == 1).all()
        for row in df.itertuples():
            m = MIMIC_PATH.fullmatch(row.path)
            assert m, row.path
            assert m[2] == str(row.subject_id) and m[1] == str(row.subject_id)[:2]
            assert m[3] == str(row.study_id) and m[4] == row.dicom_id
            assert (root / row.path).is_file() and (root / row.path).with_suffix(".dcm").is_file()
        frames[split] = df
    assert frames["train"][classes].sum().tolist() == train_counts(small["num_images"], 19,
                                                                    small["imbalance_ratio"])
    _patients_disjoint(frames, "subject_id")
    rows = pd.concat(frames.values())
    syntaxes, photometrics, views, slopes = set(), set(), set(), set()
    for row in rows.iloc[:60].itertuples():
        dcm = (root / row.path).with_suffix(".dcm")
        ds = pydicom.dcmread(dcm)
        assert ds.PatientID == str(row.subject_id)
        assert ds.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID  # parsed
        syntaxes.add(ds.file_meta.TransferSyntaxUID.name)
        photometrics.add(ds.PhotometricInterpretation)
        views.add(ds.ViewPosition)
        slopes.add(float(ds.RescaleSlope))
        assert "WindowCenter" in ds and list(ds.ImageType)[0] == "ORIGINAL"
        # DICOM and JPG releases show the same picture (JPEG loss only)
        a, b = read_cxr(dcm), read_cxr(root / row.path)
        assert np.abs(a - b).mean() < 0.02
    assert len(syntaxes) >= 2 and photometrics == {"MONOCHROME1", "MONOCHROME2"}
    assert views <= {"PA", "AP"} and len(slopes) >= 2


def test_ct_rate_layout(ct_dir):
    root = ct_dir.out_dir
    classes = list(official_classes("ct-rate"))
    for split, meta_name in (("train", "train"), ("valid", "validation")):
        labels = pd.read_csv(root / "multi_abnormality_labels" / f"{split}_predicted_labels.csv")
        meta = pd.read_csv(root / "metadata" / f"{meta_name}_metadata.csv")
        assert list(labels.columns) == ["VolumeName", *classes]
        assert list(meta.columns) == ["VolumeName", "XYSpacing", "ZSpacing", "RescaleSlope",
                                      "RescaleIntercept", "Rows", "Columns", "NumberofSlices",
                                      "PatientSex", "PatientAge"]
        assert list(meta["VolumeName"]) == list(labels["VolumeName"])
        assert meta["XYSpacing"].str.fullmatch(r"\[\d+\.?\d*, \d+\.?\d*\]").all()
        assert meta["PatientAge"].str.fullmatch(r"\d{3}Y").all()
        assert (meta["RescaleIntercept"] != 0).all()
        for name in labels["VolumeName"]:
            m = re.fullmatch(rf"{split}_(\d+)_([ab])_([12])\.nii\.gz", name)
            assert m, name
            assert (root / "dataset" / split / f"{split}_{m[1]}" / f"{split}_{m[1]}_{m[2]}" / name).is_file()
        # scans (not reconstructions) carry the long-tailed counts
        scans = labels.assign(scan=labels["VolumeName"].str.rsplit("_", n=1).str[0]).drop_duplicates("scan")
        if split == "train":
            assert scans[classes].sum().tolist() == ct_class_counts(16, 18, 0.05)
        else:
            assert (scans[classes].sum() >= 2).all()
    # headers deliberately wrong; metadata gives the real spacing and HU
    meta = pd.read_csv(root / "metadata" / "train_metadata.csv")
    row = meta.iloc[0]
    split_pid = row.VolumeName.rsplit("_", 2)[0]
    path = root / "dataset" / "train" / split_pid / row.VolumeName.rsplit("_", 1)[0] / row.VolumeName
    img = nib.load(path)
    assert img.get_data_dtype() == np.int16
    assert img.header.get_zooms() == (1.0, 1.0, 1.0)
    assert img.shape == (row.Columns, row.Rows, row.NumberofSlices)
    sxy = float(row.XYSpacing.strip("[]").split(",")[0])
    t = LoadCTd("image")({"image": str(path), "spacing_x": sxy, "spacing_y": sxy, "spacing_z": row.ZSpacing,
                          "rescale_slope": row.RescaleSlope, "rescale_intercept": row.RescaleIntercept})["image"]
    hu = t[0].numpy()
    assert np.median(hu[0, 0, :]) == pytest.approx(-1000, abs=60)  # corner: air
    assert hu.max() > 300  # bone
    assert np.diag(t.affine.numpy())[:3] == pytest.approx([sxy, sxy, row.ZSpacing])
    raw = np.asarray(img.dataobj)
    assert raw.min() >= 0 if row.RescaleIntercept <= -1024 else True  # raw values, not HU
