"""CT-RATE phantom in the official layout.

`out/dataset/{train,valid}/{split}_{pid}/{split}_{pid}_{scan}/{split}_{pid}_{scan}_{recon}.nii.gz`
(scan a/b, reconstruction 1/2), `out/multi_abnormality_labels/{train,valid}_predicted_labels.csv`
(VolumeName + the 18 classes, 0/1) and `out/metadata/{train,validation}_metadata.csv` with
VolumeName, XYSpacing (a string like "[0.75, 0.75]"), ZSpacing, RescaleSlope, RescaleIntercept,
Rows, Columns, NumberofSlices, PatientSex, PatientAge ("062Y").

Like the real release, the NIfTI files store raw integers (HU = raw * RescaleSlope +
RescaleIntercept; intercept -1024 for most, -8192 or slope 2 / intercept -2048 for some) and
their headers carry a wrong 1 x 1 x 1 mm spacing: spacing and HU come only from the metadata CSV.

Counts: `num_images` is the number of training *scans*; class c is positive in
n_c = n_max * r ** (c / (C - 1)) of them (n_max = half the scans, at least 1 each), multi-label,
independently per class. Reconstructions of one scan (about 30 % of scans have a second) share
the scan's labels and anatomy. valid has a quarter as many scans (at least 6), the same tail
shape, at least 2 positives per class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.labels import official_classes
from medlt.phantom.counts import long_tail_counts
from medlt.phantom.ct import render_ct, sample_ct_anatomy
from medlt.utils.atomic import atomic_write_text
from medlt.utils.seeding import derive_seed

CT_SPLITS = ("train", "valid")
METADATA_SPLIT = {"train": "train", "valid": "validation"}
METADATA_COLUMNS = ("VolumeName", "XYSpacing", "ZSpacing", "RescaleSlope", "RescaleIntercept", "Rows",
                    "Columns", "NumberofSlices", "PatientSex", "PatientAge")
#: header voxel size written into every NIfTI: deliberately wrong, like the real release
WRONG_HEADER_SPACING = (1.0, 1.0, 1.0)
#: physical field of view of the phantom chest (mm): x/y, z
FOV_XY_MM, FOV_Z_MM = 340.0, 280.0


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))


def ct_class_counts(num_scans: int, num_classes: int, imbalance_ratio: float, *, minimum: int = 1) -> list[int]:
    """Positives per class among `num_scans` scans: n_max = num_scans / 2."""
    counts = long_tail_counts(num_scans / 2.0, num_classes, imbalance_ratio, minimum=minimum)
    return [min(c, num_scans) for c in counts]


def _scan_labels(num_scans: int, counts: list[int], rng: np.random.Generator) -> np.ndarray:
    labels = np.zeros((num_scans, len(counts)), dtype=int)
    for c, n in enumerate(counts):
        labels[rng.choice(num_scans, size=n, replace=False), c] = 1
    return labels


def volume_shape(image_size: int) -> tuple[int, int, int]:
    return (image_size, image_size, max(8, int(round(image_size * 0.75))))


def write_ct_rate(out: Path, *, num_images: int, image_size: int, imbalance_ratio: float, seed: int,
                  progress: Callable, train_labels=None) -> tuple[dict[str, int], list[str]]:
    """`train_labels` (optional): the training scans' label vectors, in order, one reconstruction
    each (the bench's ideal arm renders exactly the vectors it plans); valid as usual."""
    from medlt.data.io import write_nifti

    classes = official_classes("ct-rate")
    C = len(classes)
    num_valid = max(6, int(round(num_images * 0.25)))
    plan_rng = _rng("ct-plan", seed)
    scans_per_split = {"train": num_images, "valid": num_valid}
    labels = {
        "train": (_scan_labels(num_images, ct_class_counts(num_images, C, imbalance_ratio), plan_rng)
                  if train_labels is None else np.asarray(train_labels, dtype=int).reshape(num_images, C)),
        "valid": _scan_labels(num_valid, ct_class_counts(num_valid, C, imbalance_ratio, minimum=2), plan_rng),
    }
    one_recon = train_labels is not None
    # scans -> patients (1 or 2 scans each) -> volumes (1 or 2 reconstructions each)
    jobs = []
    for split in CT_SPLITS:
        s, pid = 0, 0
        while s < scans_per_split[split]:
            pid += 1
            n_scans = min(scans_per_split[split] - s, 2 if plan_rng.random() < 0.3 else 1)
            for letter in "ab"[:n_scans]:
                n_recon = 1 if one_recon and split == "train" else (2 if plan_rng.random() < 0.3 else 1)
                for recon in range(1, n_recon + 1):
                    jobs.append((split, pid, letter, recon, s))
                s += 1
    shape = volume_shape(image_size)
    label_rows = {s: [] for s in CT_SPLITS}
    meta_rows = {s: [] for s in CT_SPLITS}
    files: list[str] = []
    for split, pid, letter, recon, scan_idx in progress(jobs, total=len(jobs), desc="ct-rate volumes",
                                                        unit="vol"):
        name = f"{split}_{pid}_{letter}_{recon}.nii.gz"
        folder = out / "dataset" / split / f"{split}_{pid}" / f"{split}_{pid}_{letter}"
        pat = _rng("ct-patient", seed, split, pid)
        size_scale = pat.uniform(0.9, 1.1)
        sex = "M" if pat.random() < 0.5 else "F"
        age = int(pat.integers(25, 90))
        anatomy = sample_ct_anatomy(_rng("ct-anatomy", seed, split, pid, letter))
        vec = labels[split][scan_idx]
        findings = [c for c, v in zip(classes, vec, strict=True) if v]
        hu = render_ct(findings, shape, _rng("ct-volume", seed, split, pid, letter, recon), anatomy,
                       smooth=0.5 if recon == 1 else 0.9)
        v = _rng("ct-vendor", seed, name).random()
        slope, intercept = (1.0, -1024.0) if v < 0.7 else ((1.0, -8192.0) if v < 0.85 else (2.0, -2048.0))
        raw = np.round((hu - intercept) / slope).astype(np.int16)
        write_nifti(folder / name, raw, WRONG_HEADER_SPACING,
                    descrip="medlt CT-RATE phantom (raw values; spacing/HU in metadata CSV)")
        files.append(str((folder / name).relative_to(out)))
        sxy = round(FOV_XY_MM / shape[0] * size_scale, 4)
        sz = round(FOV_Z_MM / shape[2] * size_scale, 4)
        label_rows[split].append({"VolumeName": name, **dict(zip(classes, (int(x) for x in vec), strict=True))})
        meta_rows[split].append({"VolumeName": name, "XYSpacing": f"[{sxy}, {sxy}]", "ZSpacing": sz,
                                 "RescaleSlope": slope, "RescaleIntercept": intercept, "Rows": shape[1],
                                 "Columns": shape[0], "NumberofSlices": shape[2], "PatientSex": sex,
                                 "PatientAge": f"{age:03d}Y"})
    for split in CT_SPLITS:
        files += [f"multi_abnormality_labels/{split}_predicted_labels.csv",
                  f"metadata/{METADATA_SPLIT[split]}_metadata.csv"]
        atomic_write_text(out / "multi_abnormality_labels" / f"{split}_predicted_labels.csv",
                          pd.DataFrame(label_rows[split], columns=["VolumeName", *classes]).to_csv(index=False))
        atomic_write_text(out / "metadata" / f"{METADATA_SPLIT[split]}_metadata.csv",
                          pd.DataFrame(meta_rows[split], columns=list(METADATA_COLUMNS)).to_csv(index=False))
    return {s: len(r) for s, r in label_rows.items()}, files
