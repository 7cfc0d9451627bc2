"""NIH-CXR-LT and MIMIC-CXR-LT phantoms in the official file layouts.

NIH-CXR-LT (`out/`): flat folder of 8-bit PNGs `{patient:08d}_{k:03d}.png` and
- single-label: `nih-cxr-lt_single-label_{train,balanced-val,test,balanced-test}.csv` with
  columns `id`, the 20 classes (data_manifests order), `subject_id`;
- multi-label (`multi_label=True`): `miccai2023_nih-cxr-lt_labels_{train,val,test}.csv` with
  `id`, the 20 classes, `subj_id`.

MIMIC-CXR-LT (`out/`): `files/p{XX}/p{subject_id}/s{study_id}/{dicom_id}.dcm` AND `.jpg` (the
DICOM and JPG releases share the tree) and `mimic-cxr-lt_single-label_{split}.csv` with
`subject_id,study_id,dicom_id,path`, then the 19 classes. `path` is relative to the root and ends
in `.jpg` like the official CSV; the DICOM release is the same path with `.dcm` (recipe
`data.extension: dcm`). The DICOMs mimic scanner output: DX For Presentation, PatientID =
subject_id, ViewPosition PA or AP, about half Explicit VR Little Endian, a quarter RLE Lossless
and a quarter JPEG Baseline (8-bit), about 30 % MONOCHROME1, some with RescaleSlope 2 /
RescaleIntercept -512, all with a VOI window; every file reads back to the same picture as its JPG.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.labels import official_classes
from medlt.phantom.cxr import sample_anatomy
from medlt.phantom.cxr_findings import patterns_for_labels
from medlt.phantom.cxr_render import render_cxr
from medlt.phantom.plan import PlannedImage, plan_images, split_primaries
from medlt.utils.atomic import atomic_write_text
from medlt.utils.seeding import derive_seed

NIH_SINGLE_SPLITS = ("train", "balanced-val", "test", "balanced-test")
NIH_MULTI_SPLITS = ("train", "val", "test")
MIMIC_SPLITS = ("train", "balanced-val", "test", "balanced-test")


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))


def _render(layout: str, seed: int, classes, item: PlannedImage, size: int, anatomy_cache: dict):
    if item.patient not in anatomy_cache:
        anatomy_cache.clear()  # images of a patient are consecutive: keep one
        anatomy_cache[item.patient] = sample_anatomy(_rng("anatomy", layout, seed, item.patient))
    patterns = patterns_for_labels(classes, item.labels)
    return render_cxr(patterns, size, _rng("image", layout, seed, item.split, item.patient, item.index),
                      anatomy_cache[item.patient])


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    atomic_write_text(path, pd.DataFrame(rows, columns=columns).to_csv(index=False))


def _plan(fmt: str, *, num_images: int, imbalance_ratio: float, seed: int, multi_label: bool,
          per_class_val: int, per_class_test: int, test_fraction: float, train_labels=None):
    classes = official_classes(fmt)
    per_split = split_primaries(num_images, len(classes), imbalance_ratio, multi_label=multi_label,
                                per_class_val=per_class_val, per_class_test=per_class_test,
                                test_fraction=test_fraction)
    nf = classes.index("No Finding") if "No Finding" in classes else None
    items = plan_images(len(classes), per_split, multi_label=multi_label, no_finding=nf,
                        rng=_rng("plan", fmt, seed, multi_label),
                        given=None if train_labels is None else {"train": list(train_labels)})
    return classes, items


def write_nih(out: Path, *, num_images: int, image_size: int, imbalance_ratio: float, seed: int,
              multi_label: bool, per_class_val: int, per_class_test: int, test_fraction: float,
              progress: Callable, train_labels=None) -> tuple[dict[str, int], list[str]]:
    from medlt.data.io import write_png

    layout = "nih-cxr-lt"
    classes, items = _plan(layout, num_images=num_images, imbalance_ratio=imbalance_ratio, seed=seed,
                           multi_label=multi_label, per_class_val=per_class_val,
                           per_class_test=per_class_test, test_fraction=test_fraction,
                           train_labels=train_labels)
    splits = NIH_MULTI_SPLITS if multi_label else NIH_SINGLE_SPLITS
    patient_col = "subj_id" if multi_label else "subject_id"
    rows: dict[str, list[dict]] = {s: [] for s in splits}
    files: list[str] = []
    cache: dict = {}
    for item in progress(items, total=len(items), desc=f"{layout} images", unit="img"):
        name = f"{item.patient:08d}_{item.index:03d}.png"
        write_png(out / name, _render(layout, seed, classes, item, image_size, cache))
        files.append(name)
        row = {"id": name, **dict(zip(classes, item.labels, strict=True)), patient_col: item.patient}
        rows[item.split].append(row)
    for split in splits:
        fname = (f"miccai2023_nih-cxr-lt_labels_{split}.csv" if multi_label
                 else f"nih-cxr-lt_single-label_{split}.csv")
        _write_csv(out / fname, rows[split], ["id", *classes, patient_col])
        files.append(fname)
    return {s: len(r) for s, r in rows.items()}, files


def _mimic_ids(seed: int, item: PlannedImage) -> tuple[int, int, str]:
    subject_id = 10_000_000 + 1013 * item.patient + int(seed % 997)
    study_id = 50_000_000 + 4099 * item.patient + 37 * item.index + int(seed % 31)
    h = hashlib.sha1(f"mimic-phantom|{seed}|{subject_id}|{study_id}".encode()).hexdigest()
    dicom_id = "-".join(h[i:i + 8] for i in range(0, 40, 8))
    return subject_id, study_id, dicom_id


def _mimic_dicom_meta(seed: int, subject_id: int, study_id: int, dicom_id: str) -> dict:
    r = _rng("mimic-dicom", seed, dicom_id)
    u = r.random()
    syntax = "explicit" if u < 0.5 else ("rle" if u < 0.75 else "jpeg-baseline")
    meta = {
        "transfer_syntax": syntax,
        "photometric": "MONOCHROME1" if r.random() < 0.3 else "MONOCHROME2",
        "bits_stored": 8 if syntax == "jpeg-baseline" else 12,
        "uid_seed": f"{seed}|{dicom_id}",
        "PatientID": str(subject_id),
        "PatientName": f"PHANTOM^{subject_id}",
        "PatientSex": "M" if r.random() < 0.5 else "F",
        "StudyID": str(study_id),
        "AccessionNumber": str(study_id)[-7:],
        "ViewPosition": "PA" if r.random() < 0.75 else "AP",
        "StudyDescription": "CHEST (PA AND LAT)",
        "StudyDate": f"{int(r.integers(2110, 2210))}{int(r.integers(1, 13)):02d}{int(r.integers(1, 29)):02d}",
        "StudyTime": f"{int(r.integers(0, 24)):02d}{int(r.integers(0, 60)):02d}00",
    }
    if syntax != "jpeg-baseline" and r.random() < 0.25:
        meta["rescale_slope"], meta["rescale_intercept"] = 2.0, -512.0
    return meta


def write_mimic(out: Path, *, num_images: int, image_size: int, imbalance_ratio: float, seed: int,
                multi_label: bool, per_class_val: int, per_class_test: int, test_fraction: float,
                progress: Callable) -> tuple[dict[str, int], list[str]]:
    from medlt.data.io import write_dicom, write_jpg

    layout = "mimic-cxr-lt"
    if multi_label:
        raise ValueError("the MIMIC-CXR-LT phantom is single-label only (the 26-class multi-label "
                         "CXR-LT 2023 release is not modelled); drop --multi-label")
    classes, items = _plan(layout, num_images=num_images, imbalance_ratio=imbalance_ratio, seed=seed,
                           multi_label=False, per_class_val=per_class_val,
                           per_class_test=per_class_test, test_fraction=test_fraction)
    rows: dict[str, list[dict]] = {s: [] for s in MIMIC_SPLITS}
    files: list[str] = []
    cache: dict = {}
    for item in progress(items, total=len(items), desc=f"{layout} images", unit="img"):
        subject_id, study_id, dicom_id = _mimic_ids(seed, item)
        rel = f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}/{dicom_id}"
        img = _render(layout, seed, classes, item, image_size, cache)
        write_jpg(out / f"{rel}.jpg", img, quality=95)
        write_dicom(out / f"{rel}.dcm", img, synthetic=False,
                    meta=_mimic_dicom_meta(seed, subject_id, study_id, dicom_id))
        files += [f"{rel}.jpg", f"{rel}.dcm"]
        rows[item.split].append({"subject_id": subject_id, "study_id": study_id, "dicom_id": dicom_id,
                                 "path": f"{rel}.jpg", **dict(zip(classes, item.labels, strict=True))})
    for split in MIMIC_SPLITS:
        _write_csv(out / f"mimic-cxr-lt_single-label_{split}.csv", rows[split],
                   ["subject_id", "study_id", "dicom_id", "path", *classes])
        files.append(f"mimic-cxr-lt_single-label_{split}.csv")
    return {s: len(r) for s, r in rows.items()}, files
