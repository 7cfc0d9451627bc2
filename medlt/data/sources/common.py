"""Pieces shared by the format readers: the registry, CSV reading, class-column matching, label
value checks and the data-root check. Label rules themselves live in medlt.data.labels."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from medlt.data.labels import LabelSpace, official_classes
from medlt.errors import DataError, Problem, RecipeError
from medlt.recipe.data import DataConfig
from medlt.registry import Registry

#: columns every canonical row has besides the class columns
CANONICAL = ("id", "image", "patient_id", "split", "source")
#: per-row origin, for error messages: the label CSV and the 1-based data row in it
ORIGIN = ("csv_file", "csv_row")
#: optional per-row folder the `image` path is relative to (manifest `root` column; not named
#: "image_...": MONAI reads such keys of a sample dict as the image's metadata); blank or
#: absent = data.root. After medlt.data.table.collect every row has it.
PATH_ROOT = "path_root"
#: CT rows carry these (from the CT-RATE metadata CSV, or the manifest's own columns)
CT_FIELDS = ("spacing_x", "spacing_y", "spacing_z", "rescale_slope", "rescale_intercept")


@dataclass
class SourceRows:
    """What a reader returns: canonical rows (image paths still relative to data.root, labels as
    int 0/1 columns named exactly as the label space) plus every problem it found."""

    frame: pd.DataFrame
    label_space: LabelSpace
    modality: str  # "cxr" or "ct"
    problems: list[Problem] = field(default_factory=list)
    #: official split names this format knows (for messages about data.splits)
    known_splits: tuple[str, ...] = ()
    #: official split name -> the label CSV it is read from (for "file not found" messages)
    split_files: dict[str, Path] = field(default_factory=dict)


Reader = Callable[[DataConfig, LabelSpace], SourceRows]
SOURCES: Registry[Reader] = Registry("data format")


def label_space_for(cfg: DataConfig) -> LabelSpace:
    """The label space of a recipe's data section (official list, or the manifest's own)."""
    if cfg.format == "ct-rate":
        return LabelSpace.official("ct-rate", multi_label=True)
    if cfg.format != "manifest":
        if cfg.classes is not None:
            raise RecipeError(f"recipe key 'data.classes' is only for format 'manifest'; "
                              f"'{cfg.format}' uses data_manifests/")
        return LabelSpace.official(cfg.format, multi_label=cfg.multi_label)
    if cfg.classes is None:
        raise RecipeError("recipe key 'data.classes' is required for format 'manifest': an official "
                          "format name (e.g. nih-cxr-lt) or a list of class column names")
    if isinstance(cfg.classes, str):
        try:
            names = official_classes(cfg.classes)
        except DataError as e:
            raise RecipeError(f"recipe key 'data.classes': {e}") from None
        multi = True if cfg.classes == "ct-rate" else cfg.multi_label
        return LabelSpace(names=names, multi_label=multi)
    return LabelSpace(names=tuple(cfg.classes), multi_label=cfg.multi_label)


def read_csv(path: Path, problems: list[Problem]) -> pd.DataFrame | None:
    """All cells as strings (ids keep leading zeros); a missing/unparsable file is a Problem."""
    if not path.is_file():
        problems.append(Problem(str(path), None, "missing-csv", "label CSV not found"))
        return None
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as e:  # pandas raises several parser error types
        problems.append(Problem(str(path), None, "unreadable-csv", f"cannot parse CSV ({e})"))
        return None


def require_columns(df: pd.DataFrame, columns: Iterable[str], path: Path,
                    problems: list[Problem]) -> bool:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        problems.append(Problem(str(path), None, "missing-column",
                                f"required column(s) {missing} not in header {list(df.columns)}"))
    return not missing


def match_class_columns(columns: Iterable[str], space: LabelSpace, path: Path, problems: list[Problem],
                        *, fixed: Iterable[str], strict: bool) -> dict[str, str]:
    """Map class name -> CSV column through LabelSpace (alias tolerant). Missing classes are one
    problem; with `strict`, every non-fixed column that is not a class is an unknown class column.
    Non-strict (manifest, which may carry extra columns): only columns that look like a misspelt
    class name are flagged."""
    fixed = set(fixed)
    columns = [c for c in columns if c not in fixed]
    before = len(problems)
    found = _partial(columns, space, path, problems, strict)
    if len(problems) == before:
        found = space.match_columns(columns, source=str(path))  # the label module's own check
    return found


def _partial(columns: list[str], space: LabelSpace, path: Path, problems: list[Problem],
             strict: bool) -> dict[str, str]:
    import difflib

    found: dict[str, str] = {}
    for c in columns:
        try:
            name = space.names[space.index(c)]
        except DataError as e:
            looks_like_class = difflib.get_close_matches(c, list(space.names), n=1, cutoff=0.75)
            if strict or looks_like_class:
                problems.append(Problem(str(path), None, "unknown-class-column",
                                        f"column '{c}' is not a class of this dataset: {e}"))
            continue
        found.setdefault(name, c)
    missing = [n for n in space.names if n not in found]
    if missing:
        problems.append(Problem(str(path), None, "missing-class-column",
                                f"class column(s) {missing} missing from the header"))
    return found


def label_matrix(df: pd.DataFrame, colmap: dict[str, str], space: LabelSpace, path: Path,
                 problems: list[Problem]) -> np.ndarray:
    """(N, K) int64 0/1 from the class columns; '1.0'/'0.0' accepted, anything else (blank, -1,
    'yes', 2) is a bad-label-value problem (value treated as 0 so that checks continue)."""
    out = np.zeros((len(df), space.num_classes), dtype=np.int64)
    for k, name in enumerate(space.names):
        col = colmap.get(name)
        if col is None:
            continue
        values = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy()
        ok = np.isin(values, (0.0, 1.0))
        for i in np.flatnonzero(~ok):
            problems.append(Problem(str(path), int(i) + 1, "bad-label-value",
                                    f"class '{name}' has value {df[col].iloc[i]!r}; expected 0 or 1"))
        out[:, k] = np.where(ok, values, 0).astype(np.int64)
    return out


def resolves_outside(path: Path, root_resolved: Path) -> Path | None:
    """The real location of `path` when, after following symlinks, it lies outside
    `root_resolved` (an already resolved folder); None when it stays inside."""
    real = Path(os.path.realpath(path))
    return None if real == root_resolved or real.is_relative_to(root_resolved) else real


def escapes_root(rel: str) -> bool:
    """True when a path from a label file is absolute or climbs out of its root ('..'), read as
    text (see `resolves_outside` for symlinks)."""
    if not rel:
        return True
    if os.path.isabs(rel) or PurePosixPath(rel).is_absolute() or (len(rel) > 1 and rel[1] == ":"):
        return True
    norm = os.path.normpath(rel.replace("\\", "/"))
    return norm == ".." or norm.startswith("../") or norm.startswith("..\\")


def assemble(parts: list[pd.DataFrame], space: LabelSpace, extra: Iterable[str] = ()) -> pd.DataFrame:
    cols = [*CANONICAL, *space.names, *extra, *ORIGIN]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    frame = pd.concat(parts, ignore_index=True)
    return frame[[c for c in cols if c in frame.columns] + [c for c in frame.columns if c not in cols]]


def split_part(df: pd.DataFrame, labels: np.ndarray, space: LabelSpace, *, ids, images, patients,
               split: str, path: Path, source="real") -> pd.DataFrame:
    """One split's canonical rows."""
    part = pd.DataFrame({
        "id": pd.Series(ids, dtype=str).to_numpy(),
        "image": pd.Series(images, dtype=str).to_numpy(),
        "patient_id": pd.Series(patients, dtype=str).to_numpy(),
        "split": split,
        "source": source,
    })
    for k, name in enumerate(space.names):
        part[name] = labels[:, k]
    part["csv_file"] = str(path)
    part["csv_row"] = np.arange(1, len(df) + 1)
    return part
