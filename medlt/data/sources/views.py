"""data.view_positions: keep only radiographs taken in the given views (e.g. ["PA", "AP"]).

Views come from each release's own metadata file, looked up in data.labels then data.root:
- nih-cxr-lt: `Data_Entry_2017_v2020.csv` (or `Data_Entry_2017.csv`): `Image Index`, `View Position`;
- mimic-cxr-lt: `mimic-cxr-2.0.0-metadata.csv[.gz]`: `dicom_id`, `ViewPosition`;
- manifest: its own `view_position` column.
A row whose view is unknown is a problem (never silently kept or dropped).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medlt.errors import Problem, RecipeError
from medlt.recipe.data import DataConfig

FILES = {
    "nih-cxr-lt": (("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv"), "Image Index", "View Position"),
    "mimic-cxr-lt": (("mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz"), "dicom_id",
                     "ViewPosition"),
}


def _find(cfg: DataConfig, names) -> Path | None:
    for folder in (cfg.labels, cfg.root):
        if folder is None:
            continue
        for n in names:
            if (Path(folder) / n).is_file():
                return Path(folder) / n
    return None


def view_lookup(cfg: DataConfig, frame: pd.DataFrame, problems: list[Problem]) -> pd.Series | None:
    """Upper-case view per row of `frame` ('' when unknown); None when the views are unavailable."""
    if cfg.format == "ct-rate":
        raise RecipeError("recipe key 'data.view_positions' does not apply to CT (format ct-rate)")
    if cfg.format == "manifest":
        if "view_position" not in frame.columns:
            problems.append(Problem(str(cfg.labels or cfg.root), None, "missing-column",
                                    "data.view_positions is set but the manifest has no view_position column"))
            return None
        return frame["view_position"].fillna("").astype(str).str.strip().str.upper()
    names, key_col, view_col = FILES[cfg.format]
    path = _find(cfg, names)
    if path is None:
        problems.append(Problem(str(cfg.labels or cfg.root), None, "missing-csv",
                                f"data.view_positions needs {names[0]} in data.labels or data.root"))
        return None
    meta = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=[key_col, view_col])
    views = dict(zip(meta[key_col].str.strip(), meta[view_col].str.strip().str.upper(), strict=True))
    return frame["id"].map(views).fillna("")


def filter_views(cfg: DataConfig, frame: pd.DataFrame, problems: list[Problem]) -> pd.DataFrame:
    if not cfg.view_positions:
        return frame
    views = view_lookup(cfg, frame, problems)
    if views is None:
        return frame
    for i in (views == "").to_numpy().nonzero()[0]:
        problems.append(Problem(frame["csv_file"].iat[i], int(frame["csv_row"].iat[i]), "unknown-view",
                                f"{frame['id'].iat[i]!r} has no view position in the metadata"))
    keep = views.isin([v.upper() for v in cfg.view_positions]) | (views == "")
    return frame[keep.to_numpy()].reset_index(drop=True)
