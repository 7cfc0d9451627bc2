"""The canonical table: every dataset format becomes one pandas frame plus a label space.

Columns: `id` (unique str), `image` (absolute path), `patient_id`, `split` (official
split name), one 0/1 int column per class named exactly as `label_space.names`, `source`
("real"/"synthetic"); CT rows add spacing_x, spacing_y, spacing_z (mm), rescale_slope,
rescale_intercept. `csv_file` / `csv_row` say where each row came from (for messages);
`path_root` is the folder the row's path in the label file is relative to (data.root, or for a
manifest row with root=manifest the manifest's folder); `image` must stay inside it, also after
following symlinks. A manifest's extra columns are kept.

`load_table` runs the cheap checks (CSV structure, label values, positives per row, duplicate ids,
patient leakage across splits, paths leaving data.root) and raises ValidationFailed listing all of
them; `medlt.data.validate` adds the expensive image checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.labels import LabelSpace
from medlt.data.sources import SOURCES, label_space_for
from medlt.data.sources.common import PATH_ROOT, escapes_root, resolves_outside
from medlt.data.sources.views import filter_views
from medlt.errors import DataError, Problem, ValidationFailed
from medlt.recipe import Recipe
from medlt.recipe.data import DataConfig

ROLES = ("train", "val", "test", "test_longtail")


@dataclass
class Table:
    frame: pd.DataFrame
    label_space: LabelSpace
    #: "cxr" (2D radiographs) or "ct" (NIfTI volumes)
    modality: str
    data: DataConfig

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.frame["split"]))

    def split_of_role(self, role: str) -> str:
        if role not in ROLES:
            raise DataError(f"unknown data role '{role}'; choose one of {ROLES}")
        split = getattr(self.data.splits, role)
        if split is None:
            raise DataError(f"recipe key 'data.splits.{role}' is null: this dataset has no {role} role")
        return split

    def role(self, role: str) -> pd.DataFrame:
        """Rows of the split that plays `role` ("train", "val", "test", "test_longtail")."""
        return self.split(self.split_of_role(role))

    def split(self, split: str) -> pd.DataFrame:
        if split not in self.splits:
            raise DataError(f"split '{split}' has no rows; this dataset has splits {list(self.splits)}")
        return self.frame[self.frame["split"] == split].reset_index(drop=True)

    def label_matrix(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """(N, K) int64 0/1 labels of `frame` (default: all rows)."""
        frame = self.frame if frame is None else frame
        return frame[list(self.label_space.names)].to_numpy(dtype=np.int64)

    def targets(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """Single-label: (N,) int64 class indices; multi-label: (N, K) float32 multi-hot."""
        m = self.label_matrix(frame)
        if self.label_space.multi_label:
            return m.astype(np.float32)
        return m.argmax(axis=1).astype(np.int64)

    def class_counts(self, role: str = "train") -> list[int]:
        """Images per class in the split playing `role` (multi-label: images containing the class)."""
        return [int(c) for c in self.label_matrix(self.role(role)).sum(axis=0)]


def collect(data: DataConfig) -> tuple[Table, list[Problem]]:
    """Read the labels of every split and run the cheap table checks; never stops early."""
    space = label_space_for(data)
    reader = SOURCES.get(data.format, key="data.format")
    rows = reader(data, space)
    problems = list(rows.problems)
    frame = filter_views(data, rows.frame.copy(), problems)
    root = Path(data.root)
    if not root.is_dir():
        problems.append(Problem(str(root), None, "missing-root", "data.root is not a folder (set it with "
                                                                 "--set data.root=DIR)"))

    present = set(frame["split"])
    for role in ROLES:
        split = getattr(data.splits, role)
        if split is not None and split not in present:
            where = (f"known splits of format '{data.format}': {list(rows.known_splits)}"
                     if rows.known_splits else "")
            expected = rows.split_files.get(split)
            if expected is not None and not Path(expected).is_file():
                where = f"label CSV not found; {where}"
            fix = ("set data.splits.train to the split holding the training rows" if role == "train"
                   else "or set it to null if the data has no such role")
            problems.append(Problem(str(expected or data.labels or data.root), None, "missing-split",
                                    f"data.splits.{role} = '{split}' but no label rows for that split "
                                    f"were found; {where} ({fix})"))

    names = list(space.names)
    pos = frame[names].to_numpy(dtype=np.int64).sum(axis=1) if len(frame) else np.zeros(0, int)
    # rows of a file that lacks class columns would all repeat that one problem: skip them here
    incomplete = {p.file for p in problems if p.code == "missing-class-column"}
    if not space.multi_label:
        for i in np.flatnonzero(pos != 1):
            r = frame.iloc[i]
            if r["csv_file"] in incomplete:
                continue
            what = "no positive class" if pos[i] == 0 else \
                f"{pos[i]} positive classes {space.decode(r[names].to_numpy())}"
            problems.append(Problem(r["csv_file"], int(r["csv_row"]),
                                    "no-positive" if pos[i] == 0 else "several-positives",
                                    f"single-label row {r['id']!r} has {what}; expected exactly one"))

    first: dict[str, int] = {}
    for i, ident in enumerate(frame["id"]):
        if ident in first:
            j = first[ident]
            problems.append(Problem(frame["csv_file"].iloc[i], int(frame["csv_row"].iloc[i]), "duplicate-id",
                                    f"id {ident!r} already used at {frame['csv_file'].iloc[j]}:row "
                                    f"{frame['csv_row'].iloc[j]}"))
        else:
            first[ident] = i

    seen: dict[str, tuple[str, int]] = {}  # patient -> (split, first row index)
    reported: set[tuple[str, str]] = set()
    for i, (pid, split) in enumerate(zip(frame["patient_id"], frame["split"], strict=True)):
        if pid not in seen:
            seen[pid] = (split, i)
            continue
        other_split, j = seen[pid]
        if other_split != split and (pid, split) not in reported:
            reported.add((pid, split))
            problems.append(Problem(frame["csv_file"].iloc[i], int(frame["csv_row"].iloc[i]), "patient-leak",
                                    f"patient {pid!r} is in split '{split}' and in split '{other_split}' "
                                    f"({frame['csv_file'].iloc[j]}:row {frame['csv_row'].iloc[j]}); "
                                    f"splits must be patient-disjoint"))

    if PATH_ROOT not in frame.columns:
        frame[PATH_ROOT] = ""
    frame[PATH_ROOT] = [r if isinstance(r, str) and r else str(root) for r in frame[PATH_ROOT]]
    resolved: dict[str, Path] = {}
    images = []
    for i, (rel, base) in enumerate(zip(frame["image"], frame[PATH_ROOT], strict=True)):
        which = "data.root" if base == str(root) else "the manifest's folder"
        where = (frame["csv_file"].iloc[i], int(frame["csv_row"].iloc[i]), "path-escapes-root")
        if escapes_root(rel):
            problems.append(Problem(*where, f"image path {rel!r} is absolute or leaves {which} {base}"))
            images.append("")
            continue
        path = Path(base) / rel
        if base not in resolved:
            resolved[base] = Path(os.path.realpath(base))
        real = resolves_outside(path, resolved[base])
        if real is not None:
            problems.append(Problem(*where, f"image path {rel!r} resolves to {real} (through a "
                                            f"symlink), outside {which} {resolved[base]}"))
            images.append("")
        else:
            images.append(str(path))
    frame["image"] = images
    return Table(frame.reset_index(drop=True), space, rows.modality, data), problems


def load_table(recipe: Recipe | DataConfig) -> Table:
    """The canonical table of a recipe's data; ValidationFailed lists every label-level problem.

    Image files are not opened here (see medlt.data.validate)."""
    data = recipe.data if isinstance(recipe, Recipe) else recipe
    table, problems = collect(data)
    if problems:
        raise ValidationFailed(problems)
    return table
