"""medlt's own manifest CSV (also what `medlt synth` writes as merged.csv).

Columns: `image` (path relative to the row's root; never absolute, never leaving that root, also
after following symlinks), `patient_id`, `split`, one 0/1 column per class of data.classes,
optional `id` (default: the image path), `source` ("real" default, "synthetic", or "copy": an extra
training row pointing at a real file, the copies control of `medlt bench`) and `root`
("data" default: the path is relative to data.root; "manifest": relative to the folder holding
this manifest file, as synth's merged.csv does for its synthetic rows), and any extra columns,
which are kept (seed, checkpoint_sha256, guidance_scale, ...). CT manifests (NIfTI images) need the CT columns
spacing_x, spacing_y, spacing_z (mm) and optionally rescale_slope / rescale_intercept (default 1 / 0).
The manifest file is data.labels (default data.root/manifest.csv).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.labels import LabelSpace
from medlt.data.sources.common import (
    CANONICAL,
    CT_FIELDS,
    PATH_ROOT,
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

REQUIRED = ("image", "patient_id", "split")
SOURCE_VALUES = ("real", "synthetic", "copy", "ideal")
#: values of the optional `root` column: what a row's image path is relative to
ROOT_VALUES = ("data", "manifest")
CT_SUFFIXES = (".nii", ".nii.gz")


def manifest_path(cfg: DataConfig) -> Path:
    if cfg.labels is None:
        return Path(cfg.root) / "manifest.csv"
    p = Path(cfg.labels)
    return p / "manifest.csv" if p.is_dir() else p


@SOURCES.register("manifest")
def read_manifest(cfg: DataConfig, space: LabelSpace) -> SourceRows:
    path = manifest_path(cfg)
    problems: list[Problem] = []
    df = read_csv(path, problems)
    if df is None or not require_columns(df, REQUIRED, path, problems):
        return SourceRows(assemble([], space), space, "cxr", problems)
    colmap = match_class_columns(df.columns, space, path, problems, fixed=CANONICAL, strict=False)
    labels = label_matrix(df, colmap, space, path, problems)
    images = df["image"].str.strip()
    ids = df["id"].str.strip() if "id" in df.columns else images
    is_ct = images.str.lower().str.endswith(CT_SUFFIXES)
    modality = "ct" if bool(is_ct.any()) else "cxr"
    if is_ct.any() and not is_ct.all():
        for i in np.flatnonzero(~is_ct.to_numpy()):
            problems.append(Problem(str(path), int(i) + 1, "mixed-modality",
                                    f"image {images.iloc[i]!r} is not NIfTI but other rows are CT"))
    source = df["source"].str.strip().str.lower() if "source" in df.columns else pd.Series([""] * len(df))
    source = source.replace("", "real")  # blank = real
    for i in np.flatnonzero(~source.isin(SOURCE_VALUES).to_numpy()):
        problems.append(Problem(str(path), int(i) + 1, "bad-source",
                                f"source {source.iloc[i]!r}; expected one of {SOURCE_VALUES}"))
    row_root = df["root"].str.strip().str.lower() if "root" in df.columns else pd.Series([""] * len(df))
    row_root = row_root.replace("", "data")
    for i in np.flatnonzero(~row_root.isin(ROOT_VALUES).to_numpy()):
        problems.append(Problem(str(path), int(i) + 1, "bad-root",
                                f"root {row_root.iloc[i]!r}; expected one of {ROOT_VALUES} (data: "
                                f"relative to data.root, manifest: relative to {path.parent})"))
    folders = {"data": str(Path(cfg.root)), "manifest": str(path.parent)}
    image_root = row_root.map(folders).fillna("").to_numpy()
    parts = []
    for split, idx in df.groupby(df["split"].str.strip(), sort=False).indices.items():
        sub = df.iloc[idx]
        part = split_part(sub, labels[idx], space, ids=ids.iloc[idx], images=images.iloc[idx],
                          patients=sub["patient_id"].str.strip(), split=split, path=path,
                          source=source.iloc[idx].to_numpy())
        part["csv_row"] = idx + 1
        part[PATH_ROOT] = image_root[idx]
        used = set(colmap.values()) | {"id", "image", "patient_id", "split", "source", "root"}
        for c in df.columns:
            if c not in used and c not in part.columns:
                part[c] = sub[c].to_numpy()
        parts.append(part)
    frame = assemble(parts, space)
    if modality == "ct":
        _ct_fields(frame, path, problems)
    frame = frame.sort_values("csv_row", kind="stable").reset_index(drop=True)
    splits = tuple(dict.fromkeys(df["split"].str.strip()))
    return SourceRows(frame, space, modality, problems, known_splits=splits)


def _ct_fields(frame: pd.DataFrame, path: Path, problems: list[Problem]) -> None:
    defaults = {"rescale_slope": 1.0, "rescale_intercept": 0.0}
    for f in CT_FIELDS:
        if f not in frame.columns:
            if f in defaults:
                frame[f] = defaults[f]
                continue
            frame[f] = np.nan
        raw = frame[f].replace("", np.nan) if frame[f].dtype == object else frame[f]
        if f in defaults:
            raw = raw.fillna(defaults[f])
        frame[f] = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = frame[list(CT_FIELDS)].isna().any(axis=1) | (frame[["spacing_x", "spacing_y", "spacing_z"]] <= 0).any(axis=1)
    for i in np.flatnonzero(bad.to_numpy()):
        problems.append(Problem(str(path), int(frame["csv_row"].iloc[i]), "ct-no-metadata",
                                f"CT row {frame['id'].iloc[i]!r} lacks valid {list(CT_FIELDS)}"))
