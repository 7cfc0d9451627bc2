"""Check a recipe's data before anything trains: every row of every split, every problem once.

Label-level checks come from medlt.data.table.collect (CSV structure, unknown/missing class
columns, non-0/1 values, positives per single-label row, duplicate ids, patients in several splits,
paths leaving data.root, CT volumes without metadata). Here each image is then opened and fully
decoded (a header check would miss truncated files): CXR through medlt.data.io.read_cxr, CT
through nibabel (all voxels read, so a truncated .nii.gz fails its gzip check); 4D volumes and
volumes or images with a side of 1 are rejected (medlt.data.io.probe).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from medlt.cliutils import progress
from medlt.data.table import Table, collect
from medlt.errors import Problem
from medlt.recipe import Recipe
from medlt.recipe.data import DataConfig


def check_image(path: str, modality: str) -> tuple[str, str] | None:
    """None when the image decodes to one usable image (medlt.data.io.probe.decode_problem: a 2D
    CXR, or a 3D CT volume with every side >= 2 and finite values); else (code, message)."""
    from medlt.data.io.probe import decode_problem

    p = Path(path)
    if not p.is_file():
        return "missing-file", f"image file not found: {p}"
    problem = decode_problem(p, modality)
    return None if problem is None else ("unreadable-image", f"{p}: {problem}")


def validate_table(table: Table, *, check_images: bool = True, workers: int = 4,
                   show_progress: bool = True) -> list[Problem]:
    """Image checks for every row of `table` (rows whose path escapes data.root are skipped: they
    already have a problem)."""
    frame = table.frame
    todo = [i for i, img in enumerate(frame["image"]) if img]
    if not check_images:
        return []

    def one(i: int):
        return i, check_image(frame["image"].iat[i], table.modality)

    problems: list[Problem] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = progress(pool.map(one, todo), total=len(todo), desc="validate images", unit="img",
                           disable=not show_progress)
        for i, res in results:
            if res is not None:
                code, msg = res
                problems.append(Problem(frame["csv_file"].iat[i], int(frame["csv_row"].iat[i]), code,
                                        f"{frame['id'].iat[i]!r}: {msg}"))
    return problems


def validate(recipe: Recipe | DataConfig, *, check_images: bool = True, workers: int = 4,
             show_progress: bool = True) -> list[Problem]:
    """Every problem of the recipe's data (empty list = clean), sorted by file and row."""
    data = recipe.data if isinstance(recipe, Recipe) else recipe
    table, problems = collect(data)
    # without the image folder every row would repeat "file not found": the one root problem says it
    root_missing = any(p.code == "missing-root" for p in problems)
    problems += validate_table(table, check_images=check_images and not root_missing, workers=workers,
                               show_progress=show_progress)
    return sorted(problems, key=lambda p: (p.file, -1 if p.row is None else p.row, p.code))
