"""Benchmark methods: a method spec -> the recipe's `regularizers:` list (and nothing else).

A spec is one or more registered methods joined by `+`, each optionally with `(key=value, ...)`:
`weight` or any option of that regularizer, e.g. `cbdm(tau=0.5)`, `cbdm(weight=0.3)+coral(kappa=0.5)`.
Unspecified values are the registered defaults below (the components' own defaults). Every generator
of a bench is trained from the same recipe; only `regularizers:` and the seed differ between cells.

Cells are keyed by the *resolved* list: `canonical` spells it one way (parts sorted by name, only the
values that differ from the defaults, numbers as floats), so `cbdm(tau=1)`, `cbdm` and
`cbdm(weight=1.0,tau=1.0)` are one method and share a cell; `coral+cbdm` is `cbdm+coral`.
"""

from __future__ import annotations

import difflib
import math
import re

from medlt.errors import MedltError, RecipeError, UsageError

#: method name -> regularizer entries (as in a recipe's `regularizers:` list), at their defaults
METHODS: dict[str, list[dict]] = {
    "plain": [],
    "cbdm": [{"name": "cbdm", "weight": 1.0, "options": {"tau": 1.0, "gamma": 0.25, "prior": "auto"}}],
    "overlap": [{"name": "overlap", "weight": 0.1, "options": {"margin": 0.1, "kind": "hinge"}}],
    "ccua": [{"name": "ccua", "weight": 1.0, "options": {"alpha": 1.0, "gamma_al": 1.0, "temperature": 0.1}}],
    "coral": [{"name": "coral", "weight": 0.05, "options": {"temperature": 0.1, "kappa": 0.3}}],
    "t2h": [{"name": "t2h", "weight": 1.0, "options": {}}],
}

#: the reserved names of the controls (not generator methods)
CONTROLS = ("real", "copies")

_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?$", re.S)
_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses; RecipeError for unbalanced ones."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise RecipeError(f"--methods: unbalanced ')' in '{text}'")
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise RecipeError(f"--methods: unbalanced '(' in '{text}'")
    parts.append("".join(cur).strip())
    return parts


def _unknown(name: str) -> RecipeError:
    close = difflib.get_close_matches(name, list(METHODS), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return RecipeError(f"--methods: unknown method '{name}'{hint} (registered: {', '.join(METHODS)}; "
                       f"combine with '+', e.g. cbdm+coral; options in brackets, e.g. cbdm(tau=0.5))")


def _value(spec: str, key: str, text: str):
    text = text.strip()
    if not _VALUE.match(text):
        raise RecipeError(f"--methods: '{spec}': bad value for '{key}': '{text}'")
    try:
        v = float(text)
    except ValueError:
        return text  # a word option (e.g. prior=uniform); the component checks it
    if not math.isfinite(v):
        raise RecipeError(f"--methods: '{spec}': '{key}' must be a finite number, got '{text}'")
    return v


def _part(spec: str, part: str) -> list[dict]:
    m = _PART.match(part)
    if not m:
        raise RecipeError(f"--methods: '{spec}': cannot read '{part}' (expected name or name(key=value, ...))")
    name, args = m.group(1), m.group(2)
    if name not in METHODS:
        raise _unknown(name)
    regs = [dict(r, options=dict(r["options"])) for r in METHODS[name]]
    if args is None:
        return regs
    if not regs:
        raise RecipeError(f"--methods: '{spec}': '{name}' has no options")
    (reg,) = regs
    allowed = ("weight", *reg["options"])
    given: set[str] = set()
    for item in (a for a in _split_top(args, ",") if a):
        key, eq, val = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise RecipeError(f"--methods: '{spec}': expected key=value, got '{item}'")
        if key in given:  # the last value would win silently
            raise RecipeError(f"--methods: '{spec}': '{key}' is given twice in '{name}(...)'; give each option once")
        given.add(key)
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(allowed)}"
            raise RecipeError(f"--methods: '{spec}': '{key}' is not an option of '{name}'; {hint}")
        if key == "weight":
            w = _value(spec, key, val)
            if isinstance(w, str) or w < 0:
                raise RecipeError(f"--methods: '{spec}': 'weight' must be a number >= 0, got '{val.strip()}'")
            reg["weight"] = w
        else:
            reg["options"][key] = _value(spec, key, val)
    return regs


def _validate(spec: str, regs: list[dict]) -> None:
    """The components' own checks (ranges, fixed weights), reported against the spec."""
    from medlt.diffusion.regularizers import build_regularizers
    from medlt.recipe.diffusion import RegularizerConfig

    try:
        build_regularizers([RegularizerConfig(**r) for r in regs])
    except MedltError as e:  # the recipe key means nothing here: name the option instead
        msg = re.sub(r"recipe key 'regularizers\[\d+\]\.(?:options\.)?(\w+)'", r"'\1'", str(e))
        raise RecipeError(f"--methods: '{spec}': {msg}") from None


def method_regularizers(method: str) -> list[dict]:
    """The resolved regularizer list of a spec ('plain', 'cbdm(tau=0.5)', 'cbdm+coral', ...), parts
    sorted by name; RecipeError with a did-you-mean hint for an unknown method or option, a part named
    twice, 'plain' combined, or a value the component refuses."""
    parts = _split_top(method.strip(), "+")
    if any(not p for p in parts):
        raise RecipeError(f"--methods: empty part in '{method}'")
    names = [(_PART.match(p).group(1) if _PART.match(p) else p) for p in parts]
    if len(set(names)) != len(names):
        raise RecipeError(f"--methods: '{method}' names a method twice")
    if len(parts) > 1 and "plain" in names:
        raise RecipeError(f"--methods: '{method}': 'plain' (no regularizer) cannot be combined")
    regs: list[dict] = []
    for _, p in sorted(zip(names, parts, strict=True)):
        regs += _part(method, p)
    _validate(method, regs)
    return regs


def _fmt(v) -> str:
    return repr(float(v)) if isinstance(v, int | float) else str(v)


def canonical(method: str) -> str:
    """The one spelling of a spec's resolved regularizer list (the bench's cell key)."""
    regs = method_regularizers(method)
    if not regs:
        return "plain"
    out = []
    for r in regs:
        default = METHODS[r["name"]][0]
        diff = [("weight", r["weight"])] if float(r["weight"]) != float(default["weight"]) else []
        diff += [(k, v) for k, v in sorted(r["options"].items()) if v != default["options"].get(k)]
        out.append(r["name"] + (f"({','.join(f'{k}={_fmt(v)}' for k, v in diff)})" if diff else ""))
    return "+".join(out)


def parse_methods(text: str) -> list[str]:
    """Comma-separated method specs (commas inside brackets belong to the spec), validated and
    returned in their canonical spelling, order kept; two spellings of one configuration are refused."""
    specs = _split_top(text, ",")
    if not any(specs):
        raise UsageError("--methods: no method given")
    if "" in specs:
        raise UsageError(f"--methods '{text}': an empty item (two commas in a row, or a comma at either end)")
    names: list[str] = []
    for spec in specs:
        if spec in CONTROLS:
            raise RecipeError(f"--methods: '{spec}' is a control that every bench runs; list generator methods only")
        c = canonical(spec)
        if c in names:
            first = specs[names.index(c)]
            same = "" if first == spec else f" ('{first}' and '{spec}' are the same configuration, '{c}')"
            raise RecipeError(f"--methods: a method is listed twice in '{text}'{same}")
        names.append(c)
    return names


def parse_seeds(text: str, what: str = "--seeds") -> list[int]:
    """Distinct non-negative integers, comma-separated; UsageError (exit 2) naming the option for an
    empty value or item, a non-integer, a repeat or a negative seed."""
    if not text.strip():
        raise UsageError(f"{what}: expected comma-separated integers, got '{text}'")
    if "" in (p.strip() for p in text.split(",")):
        raise UsageError(f"{what} '{text}': an empty item (two commas in a row, or a comma at either end)")
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated integers, got '{text}'") from None
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise UsageError(f"{what}: expected distinct non-negative integers, got '{text}'")
    return seeds
