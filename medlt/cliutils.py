"""Pieces every CLI verb shares: the recipe argument, `--set` overrides, progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import typer

from medlt.recipe import Recipe, load_recipe

T = TypeVar("T")

RECIPE_ARG = typer.Argument(..., help="Recipe YAML (see recipes/).", show_default=False)
SET_OPT = typer.Option(
    None, "--set", "-s", metavar="<key=val>",
    help="Override a recipe key before validation, e.g. --set data.root=/data/nih "
         "--set training.lr=1e-4. Repeatable. Relative paths are relative to the current directory.",
)


def load_recipe_cli(path: Path, sets: list[str] | None, *, uses: tuple[str, ...] = ()) -> Recipe:
    """Load and validate a recipe; `uses` ("diffusion", "classifier") adds the checks that tie
    data.image_size to those networks (medlt.recipe.checks)."""
    from medlt.recipe.checks import check_classifier_shapes, check_diffusion_shapes

    sets = list(sets or [])
    recipe = load_recipe(path, sets)
    if "diffusion" in uses:
        check_diffusion_shapes(recipe, str(path), sets)
    if "classifier" in uses:
        check_classifier_shapes(recipe, str(path), sets)
    return recipe


def comma_list(text: str, option: str, convert: Callable[[str], T], *, kind: str = "values") -> list[T]:
    """The items of a comma-separated option value, each through `convert` (e.g. int, float).

    UsageError (exit 2) naming `option` for an empty value, an empty item ('a,,b', a trailing comma),
    an item `convert` refuses, or an item given twice."""
    from medlt.errors import UsageError

    items = [p.strip() for p in text.split(",")]
    if not any(items):
        raise UsageError(f"{option} '{text}': empty; give comma-separated {kind}")
    if "" in items:
        raise UsageError(f"{option} '{text}': an empty item (two commas in a row, or a comma at either end)")
    values: list[T] = []
    for item in items:
        try:
            v = convert(item)
        except (TypeError, ValueError):
            raise UsageError(f"{option} '{text}': '{item}' is not valid (comma-separated {kind} expected)") from None
        if v in values:
            raise UsageError(f"{option} '{text}': '{item}' is given twice")
        values.append(v)
    return values


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool = False) -> Iterator[T]:
    """Progress on stderr (medlt.utils.progress): a tqdm bar on a terminal, plain periodic lines
    (rate, ETA) otherwise, per MEDLT_PROGRESS; nothing when `disable` (e.g. non-zero ranks)."""
    from medlt.utils.progress import progress as _progress

    return _progress(iterable, total=total, desc=desc, unit=unit, disable=disable)
