"""NIH-CXR-LT (LongTailCXR): one flat PNG folder (data.root) and per-split label CSVs (data.labels).

Single-label: `nih-cxr-lt_single-label_{train,balanced-val,test,balanced-test}.csv` with columns
`id` (PNG file name), the 20 class columns, `subject_id`.
Multi-label (data.multi_label): `miccai2023_nih-cxr-lt_labels_{train,val,test}.csv` with `id`,
the 20 class columns, `subj_id`.
"""

from __future__ import annotations

from pathlib import Path

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

SINGLE_SPLITS = ("train", "balanced-val", "test", "balanced-test")
MULTI_SPLITS = ("train", "val", "test")


def split_files(labels_dir: Path, multi_label: bool) -> dict[str, Path]:
    if multi_label:
        return {s: labels_dir / f"miccai2023_nih-cxr-lt_labels_{s}.csv" for s in MULTI_SPLITS}
    return {s: labels_dir / f"nih-cxr-lt_single-label_{s}.csv" for s in SINGLE_SPLITS}


@SOURCES.register("nih-cxr-lt")
def read_nih(cfg: DataConfig, space: LabelSpace) -> SourceRows:
    labels_dir = Path(cfg.labels or cfg.root)
    patient_col = "subj_id" if space.multi_label else "subject_id"
    problems: list[Problem] = []
    parts = []
    files = split_files(labels_dir, space.multi_label)
    for split, path in files.items():
        if not path.is_file():
            continue  # optional unless a role uses it (checked by the table)
        df = read_csv(path, problems)
        if df is None or not require_columns(df, ("id", patient_col), path, problems):
            continue
        colmap = match_class_columns(df.columns, space, path, problems, fixed=("id", patient_col),
                                     strict=True)
        labels = label_matrix(df, colmap, space, path, problems)
        ids = df["id"].str.strip()
        parts.append(split_part(df, labels, space, ids=ids, images=ids, patients=df[patient_col].str.strip(),
                                split=split, path=path))
    return SourceRows(assemble(parts, space), space, "cxr", problems,
                      known_splits=tuple(files), split_files=files)
