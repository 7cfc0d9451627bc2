"""DIR/bench.settings.json: what a bench folder was run with, so a re-run can only resume it.

The resolved base recipe (after the preset's and the user's --set) must be the same on a re-run;
methods and seeds may change (cells are keyed by method and seed, so new ones are added and
finished ones are kept).
"""

from __future__ import annotations

import json
from pathlib import Path

from medlt.errors import RecipeError
from medlt.utils.atomic import atomic_write_text

FILE = "bench.settings.json"
#: keys a re-run may change without invalidating finished cells (test_split_label follows the recipe,
#: which is compared on its own)
FREE_KEYS = ("methods", "seeds", "classifier_seeds", "recipe_file", "sets", "preset", "test_split_label",
             "resolved_sets")
#: settings added after benches were first written, with the value a bench without them ran under:
#: such a bench resumes as it was designed (no ideal arm, the real-only classifier as judge)
OLD_DEFAULTS = {"ideal_arm": False, "judge_cell": False}


def table_split_label(recipe) -> str:
    """How the bench table names the split its bAcc is on: the recipe's data.splits.test, called
    balanced only when its name says so (CT-RATE's test role is its `valid` split, which is not)."""
    split = recipe.data.splits.test
    if split and "balanced" in str(split):
        return f"balanced test split '{split}'"
    return f"test split '{split}' (data.splits.test)"


def resolved_sets(recipe, sets: list[str]) -> list[str]:
    """`key=value` for every key that the preset's and the user's --set name, with the value it has in
    the resolved recipe (a later --set wins over the preset); --dry-run and bench.md show them."""
    from medlt.recipe import recipe_to_dict

    flat = _flat(json.loads(json.dumps(recipe_to_dict(recipe), default=str)))
    out: list[str] = []
    for s in sets:
        k = s.split("=", 1)[0].strip()
        if not k or any(o.startswith(k + "=") for o in out):
            continue
        v = flat.get(k)
        if v is None and k not in flat:  # a whole section: its sub-keys
            v = {kk[len(k) + 1:]: vv for kk, vv in flat.items() if kk.startswith(k + ".")}
        out.append(f"{k}={v if isinstance(v, str) else json.dumps(v)}")
    return out


def is_phantom(recipe) -> bool:
    from medlt.phantom.write import LAYOUTS, MARKER

    return recipe.data.format in LAYOUTS and (Path(recipe.data.root) / MARKER).is_file()


def _flat(d, prefix=""):
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def check_settings(out: Path, recipe, settings: dict) -> None:
    """RecipeError when OUT holds a bench run with another resolved recipe or judge. Recipe keys
    added to the schema since the bench was started count as their defaults (as for a resumed
    training run), so a medlt upgrade alone does not lock a bench folder."""
    from medlt.recipe import recipe_to_dict
    from medlt.recipe.load import recipe_from_resolved

    f = Path(out) / FILE
    if not f.is_file():
        return
    old = json.loads(f.read_text())
    recorded_recipe = old.get("recipe", {})
    try:  # fill in keys the schema gained since; a recipe the schema no longer reads is compared as is
        recorded_recipe = recipe_to_dict(recipe_from_resolved(recorded_recipe))
    except (RecipeError, TypeError, ValueError):
        recorded_recipe = old.get("recipe", {})
    a = _flat(json.loads(json.dumps(recorded_recipe, default=str)))
    b = _flat(json.loads(json.dumps(recipe_to_dict(recipe), default=str)))
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        raise RecipeError(f"{out} holds a bench run with another recipe (recipe key(s) {', '.join(diff[:5])} "
                          f"differ); re-run it with the same recipe and --set, or choose another --out")
    recorded = {**OLD_DEFAULTS, **old.get("settings", {})}  # a key the bench predates: its old default
    for k, v in settings.items():
        if k not in FREE_KEYS and recorded.get(k) != v:
            raise RecipeError(f"{out} holds a bench run with another {k} ({recorded.get(k)!r}, "
                              f"now {v!r}); choose another --out")


def predated_settings(out: Path) -> dict:
    """For a bench folder written before some settings existed: {key: old default} for each key of
    OLD_DEFAULTS its bench.settings.json lacks ({} for a new folder), so the bench resumes with the
    cells it was started with."""
    f = Path(out) / FILE
    if not f.is_file():
        return {}
    have = json.loads(f.read_text()).get("settings", {})
    return {k: v for k, v in OLD_DEFAULTS.items() if k not in have}


def recorded_fingerprint(out: Path) -> dict | None:
    """The data fingerprint bench.settings.json recorded at the start of the last run (None: none)."""
    f = Path(out) / FILE
    if not f.is_file():
        return None
    return json.loads(f.read_text()).get("data_fingerprint")


def write_settings(out: Path, recipe, settings: dict, data_fingerprint: dict | None = None) -> Path:
    from medlt.recipe import recipe_to_dict

    d = {"recipe": recipe_to_dict(recipe), "settings": settings}
    if data_fingerprint is not None:
        d["data_fingerprint"] = data_fingerprint
    return atomic_write_text(Path(out) / FILE, json.dumps(d, indent=1, default=str) + "\n")
