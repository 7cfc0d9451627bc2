"""Pieces every CLI verb shares: the recipe argument, `--set` overrides, progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import typer

from medlt.recipe import Recipe, load_recipe

T = TypeVar("T")

RECIPE_ARG = typer.Argument(..., help="Recipe YAML (see recipes/).", show_default=False)
SET_OPT = typer.Option(
    None, "--set", "-s",
    help="Override a recipe key before validation, e.g. --set data.root=/data/nih "
         "--set training.max_steps=100. Repeatable. Relative paths are relative to the current directory.",
)


def load_recipe_cli(path: Path, sets: list[str] | None) -> Recipe:
    return load_recipe(path, list(sets or []))


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool = False) -> Iterator[T]:
    """tqdm progress bar on stderr; off when not a terminal and MEDLT_PROGRESS is unset, or when
    `disable` (e.g. non-zero ranks)."""
    import os

    from tqdm.auto import tqdm

    off = disable or (not sys.stderr.isatty() and os.environ.get("MEDLT_PROGRESS") != "1")
    return iter(tqdm(iterable, total=total, desc=desc, unit=unit, disable=off, dynamic_ncols=True))
