"""Registered benchmark methods: a name -> the recipe's `regularizers:` list (and nothing else).

Weights and options are the README's example ones. `a+b` combines registered methods (their
regularizer lists are concatenated; `plain` adds nothing). Every generator of a bench is trained
from the same recipe; only `regularizers:` and the seed differ between cells.
"""

from __future__ import annotations

import difflib

from medlt.errors import RecipeError

#: method name -> regularizer entries (as in a recipe's `regularizers:` list)
METHODS: dict[str, list[dict]] = {
    "plain": [],
    "cbdm": [{"name": "cbdm", "weight": 1.0, "options": {"tau": 1.0, "gamma": 0.25, "prior": "auto"}}],
    "overlap": [{"name": "overlap", "weight": 0.1, "options": {"margin": 0.1, "kind": "hinge"}}],
    "ccua": [{"name": "ccua", "weight": 1.0, "options": {"alpha": 1.0, "gamma_al": 1.0, "temperature": 0.1}}],
}

#: the reserved names of the two controls (not generator methods)
CONTROLS = ("real", "copies")


def _one(name: str) -> list[dict]:
    if name not in METHODS:
        close = difflib.get_close_matches(name, list(METHODS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise RecipeError(f"--methods: unknown method '{name}'{hint} (registered: {', '.join(METHODS)}; "
                          f"combine with '+', e.g. cbdm+ccua)")
    return METHODS[name]


def method_regularizers(method: str) -> list[dict]:
    """The regularizer list of `method` ('plain', 'cbdm', 'cbdm+ccua', ...); RecipeError with a
    did-you-mean hint for an unknown part, or for a part named twice."""
    parts = [p.strip() for p in method.split("+")]
    if any(not p for p in parts):
        raise RecipeError(f"--methods: empty part in '{method}'")
    if len(set(parts)) != len(parts):
        raise RecipeError(f"--methods: '{method}' names a method twice")
    regs: list[dict] = []
    for p in parts:
        regs += [dict(r, options=dict(r.get("options", {}))) for r in _one(p)]
    if len(parts) > 1 and "plain" in parts:
        raise RecipeError(f"--methods: '{method}': 'plain' (no regularizer) cannot be combined")
    return regs


def parse_methods(text: str) -> list[str]:
    """Comma-separated method names, validated, duplicates refused, order kept."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise RecipeError("--methods: no method given")
    for n in names:
        if n in CONTROLS:
            raise RecipeError(f"--methods: '{n}' is a control that every bench runs; list generator methods only")
        method_regularizers(n)
        if "/" in n or n.startswith("."):
            raise RecipeError(f"--methods: bad name '{n}'")
    if len(set(names)) != len(names):
        raise RecipeError(f"--methods: a method is listed twice in '{text}'")
    return names


def parse_seeds(text: str, what: str = "--seeds") -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise RecipeError(f"{what}: expected comma-separated integers, got '{text}'") from None
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise RecipeError(f"{what}: expected distinct non-negative integers, got '{text}'")
    return seeds
