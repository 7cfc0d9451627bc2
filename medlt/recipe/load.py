"""Load a recipe YAML: `--set key.path=value` overrides, unknown-key check with did-you-mean,
pydantic validation, relative paths resolved against the recipe file, resolved dump.

Paths written in the recipe file are relative to the recipe file; paths given with `--set` are
relative to the current directory (that is where the user typed them).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from medlt.errors import RecipeError
from medlt.recipe.base import KeyProblem
from medlt.recipe.schema import Recipe
from medlt.registry import did_you_mean
from medlt.utils.atomic import atomic_write_text


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/list/tuple/dict annotations."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        out = []
        for a in typing.get_args(annotation):
            if a is not type(None) and a is not Ellipsis:
                out.extend(_unwrap(a))
        return out
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for a in _unwrap(annotation):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _is_path(annotation: Any) -> bool:
    return any(isinstance(a, type) and issubclass(a, Path) for a in _unwrap(annotation))


class UnknownKey(RecipeError):
    """A recipe key the schema does not have; `key` is its dotted path (e.g. 'regularizers[0].wieght')."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def check_unknown_keys(data: Any, model: type[BaseModel], prefix: str = "") -> None:
    """UnknownKey (a RecipeError) naming the first unknown key, with a did-you-mean suggestion."""
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise UnknownKey(dotted, f"recipe key '{dotted}' is unknown; {did_you_mean(str(key), tuple(fields))}")
        sub = _model_in(fields[key].annotation)
        if sub is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                check_unknown_keys(item, sub, f"{dotted}[{i}].")
        else:
            check_unknown_keys(value, sub, f"{dotted}.")


def _resolve_paths(data: Any, model: type[BaseModel], base: Path) -> None:
    """In place: make relative Path-typed values absolute against `base`."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None or value is None:
            continue
        if _is_path(field.annotation) and isinstance(value, str | Path):
            p = Path(value).expanduser()
            data[key] = str(p if p.is_absolute() else (base / p).resolve())
        sub = _model_in(field.annotation)
        if sub is not None and isinstance(value, dict):
            _resolve_paths(value, sub, base)


def override_name(text: str) -> str:
    """How an error names a `--set` override: '--set training.lr=-1'."""
    return f"--set {text}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """'training.lr=1e-4' -> (['training', 'lr'], 0.0001); the value is parsed as YAML."""
    if "=" not in text:
        raise RecipeError(f"{override_name(text)}: must look like key.path=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise RecipeError(f"{override_name(text)}: the key before '=' is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise RecipeError(yaml_problem(e, override_name(text), with_line=False)) from None
    return parts, value


def _list_item(node: list, part: str, text: str, dotted: str) -> int:
    """The index `part` names in the list at `dotted`; RecipeError naming the override otherwise."""
    try:
        i = int(part)
        node[i]
    except (ValueError, IndexError):
        raise RecipeError(f"{override_name(text)}: no list item '{part}' in '{dotted}' (it has "
                          f"{len(node)} item(s), numbered from 0)") from None
    return i


def apply_overrides(data: dict, overrides: list[str], cwd: Path) -> None:
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        model: type[BaseModel] | None = Recipe
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                node = node[_list_item(node, part, text, ".".join(parts[:i]))]
                continue
            if model is not None and part not in model.model_fields:
                dotted = ".".join(parts[: i + 1])
                raise RecipeError(f"{override_name(text)}: recipe key '{dotted}' is unknown; "
                                  f"{did_you_mean(part, tuple(model.model_fields))}")
            field = model.model_fields[part] if model is not None else None
            model = _model_in(field.annotation) if field is not None else None
            if not isinstance(node.get(part), dict | list):  # not in the file: an empty list or section
                is_list = field is not None and typing.get_origin(field.annotation) is list
                node[part] = [] if is_list else {}
            node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[_list_item(node, last, text, ".".join(parts[:-1]))] = value
            continue
        if model is not None:
            field = model.model_fields.get(last)
            if field is not None and _is_path(field.annotation) and isinstance(value, str):
                p = Path(value).expanduser()
                value = str(p if p.is_absolute() else (cwd / p).resolve())
        node[last] = value


def key_source(key: str, source: str, overrides: Sequence[str] = (), message: str = "") -> str:
    """Where the value of recipe key `key` ('regularizers[0].weight') came from: the last `--set`
    override that set it or a section holding it ('--set regularizers=[...]'), else one whose key the
    problem's `message` names (a check across keys, e.g. model.channels vs model.norm_num_groups),
    else `source` (the recipe file)."""
    parts = tuple(re.findall(r"[^.\[\]]+", key))
    set_keys = [(text, text.split("=", 1)[0].strip()) for text in reversed(overrides)]
    for text, set_key in set_keys:
        set_parts = tuple(p for p in set_key.split(".") if p)
        if parts and set_parts and parts[: len(set_parts)] == set_parts:
            return override_name(text)
    for text, set_key in set_keys:
        if set_key and re.search(rf"(?<![\w.]){re.escape(set_key)}(?![\w])", message):
            return override_name(text)
    return source


def dotted_key(loc: tuple | list) -> str:
    """('regularizers', 0, 'weight') -> 'regularizers[0].weight'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
           "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}


def _describe(e: dict) -> tuple[str, str]:
    """(dotted key, what is wrong) for one pydantic error."""
    key = dotted_key(e["loc"])
    ctx = e.get("ctx") or {}
    err = ctx.get("error")
    if isinstance(err, KeyProblem):
        key = ".".join(k for k in (key, err.key) if k)
        return key or "(top level)", err.message
    kind = e["type"]
    got = e.get("input")
    if kind in _BOUNDS:
        op, name = _BOUNDS[kind]
        return key, f"must be {op} {ctx[name]} (got {_shown(got)})"
    if kind == "too_short":
        return key, f"must have at least {ctx['min_length']} item(s) (got {_shown(got)})"
    if kind == "too_long":
        return key, f"must have at most {ctx['max_length']} item(s) (got {_shown(got)})"
    msg = e["msg"]
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind != "missing" and isinstance(got, int | float | str | bool):
        msg += f" (got {_shown(got)})"
    return key or "(top level)", msg


def _format_validation_error(err: ValidationError, source: str, overrides: Sequence[str] = ()) -> str:
    """One line per problem, each naming where the key's value came from (the file or a --set)."""
    lines = []
    for e in err.errors():
        key, msg = _describe(e)
        lines.append(f"{key_source(key, source, overrides, msg)}: recipe key '{key}': {msg}")
    return "\n".join(lines)


_TAG = re.compile(r"tag '([^']*)'")


def yaml_problem(e: yaml.YAMLError, source: str, *, with_line: bool = True) -> str:
    """One line for a YAML error: an unsupported (e.g. python/...) tag is named as such."""
    mark = getattr(e, "problem_mark", None)
    where = f"{source}: line {mark.line + 1}" if mark is not None and with_line else source
    if isinstance(e, yaml.constructor.ConstructorError):
        m = _TAG.search(str(getattr(e, "problem", "")))
        tag = m.group(1).replace("tag:yaml.org,2002:", "!!") if m else "?"
        return (f"{where}: unsupported YAML tag '{tag}' (tags that build objects are unsafe; recipes "
                f"hold plain values only)")
    return f"{where}: not valid YAML ({getattr(e, 'problem', None) or e.__class__.__name__})"


def recipe_from_dict(data: dict, *, base_dir: Path, overrides: list[str] | None = None,
                     source: str = "<recipe>", cwd: Path | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    overrides = list(overrides or [])
    _resolve_paths(data, Recipe, base_dir)
    apply_overrides(data, overrides, cwd or Path.cwd())
    try:
        check_unknown_keys(data, Recipe)
    except UnknownKey as e:
        raise RecipeError(f"{key_source(e.key, source, overrides)}: {e}") from None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError(_format_validation_error(e, source, overrides)) from None
    check_conditioning_fits_labels(recipe, source, overrides)
    return recipe


def check_conditioning_fits_labels(recipe: Recipe, source: str = "<recipe>", overrides: Sequence[str] = ()) -> None:
    """RecipeError when a recipe of single-label data sets model.multi_label_conditioning to a
    non-default value: a single-label model is conditioned by a class embedding, so the key would be
    ignored silently. (The default value, as in every resolved recipe, is fine.)"""
    from medlt.data.sources import label_space_for

    key = "multi_label_conditioning"
    value, default = getattr(recipe.model, key), type(recipe.model).model_fields[key].default
    if key not in recipe.model.model_fields_set or value == default:
        return
    try:
        multi_label = label_space_for(recipe.data).multi_label
    except RecipeError:
        return  # the data section's own problem; reported by the verbs that read the data
    if not multi_label:
        where = key_source(f"model.{key}", source, overrides)
        raise RecipeError(f"{where}: recipe key 'model.{key}': is '{value}' but the data is single-label "
                          f"(data.format {recipe.data.format}, data.multi_label false), and a single-label model "
                          f"is conditioned by a class embedding; leave the key out (or set data.multi_label: true "
                          f"for multi-label data)")


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load, override, validate. Raises RecipeError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(yaml_problem(e, str(path))) from None
    return recipe_from_dict(data or {}, base_dir=path.resolve().parent, overrides=overrides,
                            source=str(path))


def recipe_to_dict(recipe: Recipe) -> dict:
    """JSON-safe resolved recipe (stored in checkpoints and run folders)."""
    return recipe.model_dump(mode="json")


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False)


def dump_resolved(recipe: Recipe, path: str | Path) -> Path:
    """Write the resolved recipe atomically (e.g. RUN/recipe.resolved.yaml)."""
    return atomic_write_text(path, recipe_to_yaml(recipe))


def recipe_from_resolved(d: dict) -> Recipe:
    """Rebuild a Recipe from `recipe_to_dict` output (e.g. from a checkpoint). Paths are absolute."""
    try:
        return Recipe.model_validate(d)
    except ValidationError as e:
        raise RecipeError(_format_validation_error(e, "<resolved recipe>")) from None
