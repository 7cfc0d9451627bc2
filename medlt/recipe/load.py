"""Load a recipe YAML: `--set key.path=value` overrides, unknown-key check with did-you-mean,
pydantic validation, relative paths resolved against the recipe file, resolved dump.

Paths written in the recipe file are relative to the recipe file; paths given with `--set` are
relative to the current directory (that is where the user typed them).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from medlt.errors import RecipeError
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


def check_unknown_keys(data: Any, model: type[BaseModel], prefix: str = "") -> None:
    """RecipeError naming the first unknown key, with a did-you-mean suggestion."""
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise RecipeError(f"recipe key '{dotted}' is unknown; {did_you_mean(str(key), tuple(fields))}")
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


def parse_override(text: str) -> tuple[list[str], Any]:
    """'training.lr=1e-4' -> (['training', 'lr'], 0.0001); the value is parsed as YAML."""
    if "=" not in text:
        raise RecipeError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise RecipeError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise RecipeError(f"override '{text}': value is not valid YAML ({e.__class__.__name__})") from None
    return parts, value


def apply_overrides(data: dict, overrides: list[str], cwd: Path) -> None:
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        model: type[BaseModel] | None = Recipe
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                try:
                    node = node[int(part)]
                except (ValueError, IndexError):
                    raise RecipeError(f"override '{text}': no list item '{part}'") from None
                continue
            if model is not None and part not in model.model_fields:
                dotted = ".".join(parts[: i + 1])
                raise RecipeError(f"override '{text}': recipe key '{dotted}' is unknown; "
                                  f"{did_you_mean(part, tuple(model.model_fields))}")
            field = model.model_fields[part] if model is not None else None
            model = _model_in(field.annotation) if field is not None else None
            if not isinstance(node.get(part), dict | list):
                node[part] = {}
            node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
            continue
        if model is not None:
            field = model.model_fields.get(last)
            if field is not None and _is_path(field.annotation) and isinstance(value, str):
                p = Path(value).expanduser()
                value = str(p if p.is_absolute() else (cwd / p).resolve())
        node[last] = value


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"{source}: recipe key '{key}': {e['msg']}")
    return "\n".join(lines)


def recipe_from_dict(data: dict, *, base_dir: Path, overrides: list[str] | None = None,
                     source: str = "<recipe>", cwd: Path | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    _resolve_paths(data, Recipe, base_dir)
    apply_overrides(data, overrides or [], cwd or Path.cwd())
    try:
        check_unknown_keys(data, Recipe)
    except RecipeError as e:
        raise RecipeError(f"{source}: {e}") from None
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError(_format_validation_error(e, source)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load, override, validate. Raises RecipeError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RecipeError(f"{path}:{where} is not valid YAML") from None
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
