"""CT-RATE: NIfTI volumes under data.root as dataset/{split}/{split}_{pid}/{split}_{pid}_{scan}/
{split}_{pid}_{scan}_{recon}.nii.gz; in data.labels `multi_abnormality_labels/{train,valid}_predicted_labels.csv`
(VolumeName + 18 classes) and `metadata/{train,validation}_metadata.csv` (VolumeName, XYSpacing as a
string "[0.75, 0.75]", ZSpacing, RescaleSlope, RescaleIntercept, ...).

The NIfTI headers of the release carry wrong spacing, so spacing and the HU rescale come from the
metadata CSV: a volume without a metadata row is a problem. XYSpacing follows DICOM PixelSpacing
order (row spacing, column spacing) = (y, x).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.labels import LabelSpace
from medlt.data.sources.common import (
    CT_FIELDS,
    SOURCES,
    SourceRows,
    assemble,
    label_matrix,
    match_class_columns,
    read_csv,
    require_columns,
    split_part,
)
from medlt.errors import Problem
from medlt.recipe.data import DataConfig

SPLITS = ("train", "valid")
METADATA_NAME = {"train": "train", "valid": "validation"}  # note validation_ vs valid_
METADATA_COLUMNS = ("VolumeName", "XYSpacing", "ZSpacing", "RescaleSlope", "RescaleIntercept")
_NAME = re.compile(r"^(?P<split>[A-Za-z]+)_(?P<pid>[^_/]+)_(?P<scan>[^_/]+)_(?P<recon>[^_/]+?)\.nii(\.gz)?$")


def label_file(labels_dir: Path, split: str) -> Path:
    return labels_dir / "multi_abnormality_labels" / f"{split}_predicted_labels.csv"


def metadata_file(labels_dir: Path, split: str) -> Path:
    return labels_dir / "metadata" / f"{METADATA_NAME[split]}_metadata.csv"


def volume_path(volume_name: str) -> tuple[str, str] | None:
    """VolumeName -> (path relative to data.root, patient id); None when the name is malformed."""
    m = _NAME.match(volume_name.strip())
    if not m:
        return None
    s, pid, scan = m["split"], m["pid"], m["scan"]
    return f"dataset/{s}/{s}_{pid}/{s}_{pid}_{scan}/{volume_name.strip()}", f"{s}_{pid}"


def parse_xy_spacing(text: str) -> tuple[float, float]:
    """'[0.75, 0.75]' (or '0.75,0.75' / a single number) -> (row, col) spacing in mm."""
    nums = [float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", str(text))]
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) <= 0:
        raise ValueError(f"XYSpacing {text!r} is not two positive numbers")
    return nums[0], nums[1]


def read_metadata(path: Path, problems: list[Problem]) -> dict[str, tuple[dict, int]]:
    """VolumeName -> (CT fields, 1-based row)."""
    df = read_csv(path, problems)
    if df is None or not require_columns(df, METADATA_COLUMNS, path, problems):
        return {}
    out: dict[str, tuple[dict, int]] = {}
    for i, row in enumerate(df.itertuples(index=False), start=1):
        r = row._asdict()
        try:
            sy, sx = parse_xy_spacing(r["XYSpacing"])
            sz = float(r["ZSpacing"])
            slope = float(r["RescaleSlope"]) if str(r["RescaleSlope"]).strip() else 1.0
            intercept = float(r["RescaleIntercept"]) if str(r["RescaleIntercept"]).strip() else 0.0
            if not sz > 0 or not np.isfinite([sx, sy, sz, slope, intercept]).all():
                raise ValueError("ZSpacing must be > 0 and all values finite")
        except (ValueError, TypeError) as e:
            problems.append(Problem(str(path), i, "bad-metadata", f"{r['VolumeName']}: {e}"))
            continue
        out[str(r["VolumeName"]).strip()] = (
            dict(zip(CT_FIELDS, (sx, sy, sz, slope, intercept), strict=True)), i)
    return out


@SOURCES.register("ct-rate")
def read_ct_rate(cfg: DataConfig, space: LabelSpace) -> SourceRows:
    labels_dir = Path(cfg.labels or cfg.root)
    problems: list[Problem] = []
    parts = []
    for split in SPLITS:
        path = label_file(labels_dir, split)
        if not path.is_file():
            continue
        df = read_csv(path, problems)
        if df is None or not require_columns(df, ("VolumeName",), path, problems):
            continue
        meta_path = metadata_file(labels_dir, split)
        meta = read_metadata(meta_path, problems)
        colmap = match_class_columns(df.columns, space, path, problems, fixed=("VolumeName",), strict=True)
        labels = label_matrix(df, colmap, space, path, problems)
        images, patients, fields = [], [], {f: [] for f in CT_FIELDS}
        for i, name in enumerate(df["VolumeName"], start=1):
            name = name.strip()
            parsed = volume_path(name)
            if parsed is None:
                problems.append(Problem(str(path), i, "bad-volume-name",
                                        f"VolumeName {name!r} is not {{split}}_{{patient}}_{{scan}}_{{recon}}.nii.gz"))
                parsed = (name, name)
            images.append(parsed[0])
            patients.append(parsed[1])
            m = meta.get(name)
            if m is None and meta_path.is_file():
                problems.append(Problem(str(path), i, "ct-no-metadata",
                                        f"volume {name} has no row in {meta_path} (spacing/HU unknown)"))
            for f in CT_FIELDS:
                fields[f].append(m[0][f] if m else np.nan)
        part = split_part(df, labels, space, ids=df["VolumeName"].str.strip(), images=images,
                          patients=patients, split=split, path=path)
        for f in CT_FIELDS:
            part[f] = pd.Series(fields[f], dtype="float64").to_numpy()
        parts.append(part)
    return SourceRows(assemble(parts, space, CT_FIELDS), space, "ct", problems, known_splits=SPLITS,
                      split_files={s: label_file(labels_dir, s) for s in SPLITS})
