"""Writers of tiny datasets in the official layouts, used by the data tests (files are real:
PNG/JPG/DICOM through medlt.data.io, NIfTI through nibabel with non-identity affines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.io import write_dicom, write_jpg, write_png
from medlt.data.labels import official_classes
from medlt.recipe.load import recipe_from_dict

NIH = official_classes("nih-cxr-lt")
MIMIC = official_classes("mimic-cxr-lt")
CT = official_classes("ct-rate")


def upright_image(h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    """Bright band at the top (head end), dark bottom, a bright block on the image's left."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 0.3, np.float32) + rng.uniform(0, 0.05, (h, w)).astype(np.float32)
    img[: h // 4] = 0.95
    img[h // 2:, : w // 4] = 0.8
    img[-h // 4:, w // 4:] = 0.05
    return img


def recipe(tmp: Path, **data):
    if data.get("format") == "ct-rate":  # the schema needs (X, Y, Z) sizes for CT
        data.setdefault("image_size", [8, 8, 4])
    d = {"name": "t", "seed": 0, "data": data}
    return recipe_from_dict(d, base_dir=Path(tmp))


def one_hot(names, cls) -> dict:
    return {n: int(n == cls) for n in names}


def write_nih(root: Path, sizes=None, *, multi_label: bool = False, h=48, w=40) -> dict[str, Path]:
    """Flat PNG folder + split CSVs; class i of row k = k mod K (single-label). Patients unique."""
    sizes = sizes or ({"train": 24, "val": 4, "test": 4} if multi_label else
                      {"train": 24, "balanced-val": 4, "test": 4, "balanced-test": 4})
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in sizes.items():
        rows = []
        for k in range(n):
            ident = f"{split}_{k:04d}.png"
            write_png(root / ident, upright_image(h, w, seed=k))
            labels = one_hot(NIH, NIH[k % len(NIH)])
            if multi_label and k % 3 == 0:
                labels[NIH[(k + 5) % len(NIH)]] = 1
            rows.append({"id": ident, **labels, ("subj_id" if multi_label else "subject_id"): f"{split}-{k}"})
        name = (f"miccai2023_nih-cxr-lt_labels_{split}.csv" if multi_label
                else f"nih-cxr-lt_single-label_{split}.csv")
        files[split] = root / name
        pd.DataFrame(rows).to_csv(files[split], index=False)
    return files


def write_mimic(root: Path, labels_dir: Path, ext: str, sizes=None, h=48, w=40) -> dict[str, Path]:
    """files/pXX/pSUBJECT/sSTUDY/<dicom_id>.{jpg,dcm} + CSVs whose `path` is written with .jpg."""
    sizes = sizes or {"train": 19, "balanced-val": 3, "test": 3, "balanced-test": 3}
    labels_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    subject = 10000000
    for split, n in sizes.items():
        rows = []
        for k in range(n):
            subject += 1
            study, dicom_id = 50000000 + subject, f"d{subject:08d}-{k}"
            rel = f"files/p{str(subject)[:2]}/p{subject}/s{study}/{dicom_id}.jpg"
            target = root / rel
            img = upright_image(h, w, seed=k)
            if ext == "jpg":
                write_jpg(target, img)
            else:
                meta = {"photometric": "MONOCHROME1" if k % 2 else "MONOCHROME2",
                        "PatientID": str(subject), "ViewPosition": "PA"}
                write_dicom(target.with_suffix(".dcm"), img, synthetic=False, meta=meta)
            rows.append({"subject_id": subject, "study_id": study, "dicom_id": dicom_id, "path": rel,
                         **one_hot(MIMIC, MIMIC[k % len(MIMIC)])})
        files[split] = labels_dir / f"mimic-cxr-lt_single-label_{split}.csv"
        pd.DataFrame(rows).to_csv(files[split], index=False)
    return files


def ct_affine(header_spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Non-identity header affine: axis 0 points left (x flipped), axis 1 posterior (y flipped),
    with a WRONG spacing and an offset; the reader must keep the directions, not the spacing."""
    sx, sy, sz = header_spacing
    return np.array([[-sx, 0, 0, 30.0], [0, -sy, 0, 20.0], [0, 0, sz, -50.0], [0, 0, 0, 1]])


def write_ct_volume(path: Path, raw: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(raw.astype(np.int16), affine), str(path))


def ct_raw(shape=(20, 16, 10), value: int | None = None) -> np.ndarray:
    """Raw stored values; ramp along array axis 0 unless a constant `value` is given."""
    if value is not None:
        return np.full(shape, value, np.int16)
    ramp = np.linspace(0, 1000, shape[0])[:, None, None]
    return np.broadcast_to(ramp, shape).astype(np.int16).copy()


def write_ct_rate(root: Path, counts=None, *, shape=(20, 16, 10), spacing=(2.0, 2.0, 4.0), slope=1.0,
                  intercept=-1024.0, value: int | None = None, skip_metadata: tuple[str, ...] = ()) -> dict:
    """CT-RATE tree + labels + metadata (metadata spacing = `spacing`, header spacing = 1 mm)."""
    counts = counts or {"train": 4, "valid": 2}
    out = {}
    for split, n in counts.items():
        labels, meta = [], []
        for k in range(n):
            name = f"{split}_{k + 1}_a_1.nii.gz"
            rel = Path("dataset") / split / f"{split}_{k + 1}" / f"{split}_{k + 1}_a" / name
            write_ct_volume(root / rel, ct_raw(shape, value), ct_affine())
            vec = {c: int(i == k % len(CT) or i == (k + 3) % len(CT)) for i, c in enumerate(CT)}
            labels.append({"VolumeName": name, **vec})
            if name not in skip_metadata:
                meta.append({"VolumeName": name, "Rows": shape[1], "Columns": shape[0],
                             "XYSpacing": f"[{spacing[1]}, {spacing[0]}]", "ZSpacing": spacing[2],
                             "RescaleSlope": slope, "RescaleIntercept": intercept, "PatientSex": "F"})
        lab = root / "multi_abnormality_labels" / f"{split}_predicted_labels.csv"
        met = root / "metadata" / f"{'validation' if split == 'valid' else split}_metadata.csv"
        lab.parent.mkdir(parents=True, exist_ok=True)
        met.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(labels).to_csv(lab, index=False)
        pd.DataFrame(meta).to_csv(met, index=False)
        out[split] = (lab, met)
    return out


CT_SPLITS = {"train": "train", "val": "valid", "test": "valid", "test_longtail": None}
