"""MIMIC-CXR-LT: images under data.root as files/pXX/pSUBJECT/sSTUDY/<dicom_id>.{jpg,dcm} and
`mimic-cxr-lt_single-label_{train,balanced-val,test,balanced-test}.csv` in data.labels with columns
`subject_id, study_id, dicom_id, path`, then the 19 class columns. `path` is written with `.jpg`
(the JPG release); data.extension = "dcm" reads the DICOM release from the same tree.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from medlt.data.labels import LabelSpace
from medlt.data.sources.common import (
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

SPLITS = ("train", "balanced-val", "test", "balanced-test")
FIXED = ("subject_id", "study_id", "dicom_id", "path")


def split_files(labels_dir: Path) -> dict[str, Path]:
    return {s: labels_dir / f"mimic-cxr-lt_single-label_{s}.csv" for s in SPLITS}


def with_extension(rel: str, extension: str) -> str:
    p = PurePosixPath(rel.strip().replace("\\", "/"))
    return str(p.with_suffix("." + extension)) if p.suffix else str(p) + "." + extension


@SOURCES.register("mimic-cxr-lt")
def read_mimic(cfg: DataConfig, space: LabelSpace) -> SourceRows:
    labels_dir = Path(cfg.labels or cfg.root)
    problems: list[Problem] = []
    parts = []
    files = split_files(labels_dir)
    for split, path in files.items():
        if not path.is_file():
            continue
        df = read_csv(path, problems)
        if df is None or not require_columns(df, FIXED, path, problems):
            continue
        colmap = match_class_columns(df.columns, space, path, problems, fixed=FIXED, strict=True)
        labels = label_matrix(df, colmap, space, path, problems)
        images = [with_extension(p, cfg.extension) for p in df["path"]]
        parts.append(split_part(df, labels, space, ids=df["dicom_id"].str.strip(), images=images,
                                patients=df["subject_id"].str.strip(), split=split, path=path))
    return SourceRows(assemble(parts, space), space, "cxr", problems, known_splits=SPLITS,
                      split_files=files)
