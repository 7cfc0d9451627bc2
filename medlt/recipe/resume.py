"""What may change when a run is resumed, and the run folder's record of each resume.

A resumed run must be the run that was started: only keys that set how often things happen, where
the run executes, or what the trainer does not read may differ from the checkpoint's recipe. Any
other difference (a learning rate, a regularizer, the data) is refused, listing the keys, so the
run folder's recipe always describes what ran. Each accepted resume appends an entry (time, step,
changed keys with old and new values) to RUN/resume_history.yaml.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from medlt.errors import RecipeError
from medlt.utils.atomic import atomic_write_text

#: `medlt train --resume`: keys that may differ from the checkpoint's recipe. A trailing ".*"
#: covers a whole section the diffusion trainer does not read (sampling only draws the sample grids).
DIFFUSION_RESUMABLE = (
    "name",
    "training.max_steps", "training.checkpoint_every_steps", "training.sample_grid_every_steps",
    "training.log_every_steps", "training.sample_grid_per_class", "training.device",
    "data.num_workers", "data.cache_dir", "data.cache_memory", "data.group_thresholds",
    "data.splits.val", "data.splits.test", "data.splits.test_longtail",
    "sampling.*", "synth.*", "classifier.*", "evaluate.*", "autoencoder.*",
)

#: `medlt classify` re-run in the same folder: the classifier reads seed, data and classifier only;
#: its epoch counts play the role of training.max_steps
CLASSIFIER_RESUMABLE = (
    "name", "classifier.device", "classifier.epochs", "classifier.crt_epochs",
    "data.num_workers", "data.cache_dir", "data.cache_memory", "data.group_thresholds",
    "data.splits.test", "data.splits.test_longtail",
    "model.*", "diffusion.*", "regularizers.*", "training.*", "sampling.*", "synth.*", "evaluate.*",
    "autoencoder.*",
)

HISTORY_FILE = "resume_history.yaml"


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are leaves."""
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def recipe_differences(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (old, new) for every leaf that differs (a missing key is None)."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _allowed(key: str, patterns: Iterable[str]) -> bool:
    for p in patterns:
        if key == p or (p.endswith(".*") and (key + ".").startswith(p[:-1])):
            return True
        if key.startswith(p + "."):
            return True
    return False


def check_resume_recipe(old: dict, new: dict, *, allowed: Iterable[str], what: str,
                        source: str) -> dict[str, tuple[Any, Any]]:
    """The allowed differences (key -> (old, new)); RecipeError listing every other one.

    `old` is the checkpoint's `recipe_to_dict`, `new` this invocation's; `what` names the action
    ("--resume"), `source` the checkpoint."""
    allowed = tuple(allowed)
    diff = recipe_differences(old, new)
    refused = {k: v for k, v in diff.items() if not _allowed(k, allowed)}
    if refused:
        shown = ", ".join(f"{k} ({_short(o)} -> {_short(n)})" for k, (o, n) in refused.items())
        raise RecipeError(f"{what}: recipe key(s) differ from the checkpoint {source}: {shown}; only how often "
                          f"things happen and where they run may change on resume (e.g. training.max_steps); "
                          f"use the checkpoint's values or a new --out")
    return diff


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def check_rerun(checkpoint: str | Path, new: dict, *, allowed: Iterable[str],
                what: str) -> tuple[dict, dict] | None:
    """Re-entering a run folder: None when `checkpoint` does not exist, else (its state, the allowed
    changes); RecipeError listing any other difference from the checkpoint's recipe."""
    from medlt.recipe.load import recipe_from_resolved, recipe_to_dict
    from medlt.utils.checkpoint import load_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    old = state.get("recipe")
    if not isinstance(old, dict):
        return state, {}
    try:  # fill in keys added to the schema since the checkpoint was written
        old = recipe_to_dict(recipe_from_resolved(old))
    except RecipeError:
        pass
    return state, check_resume_recipe(old, new, allowed=allowed, what=what, source=str(path))


def append_resume_history(run_dir: str | Path, *, position: dict[str, Any],
                          changed: dict[str, tuple[Any, Any]], command: str) -> Path:
    """Append {time_utc, command, resumed_at: position, changed: {key: {old, new}}} to
    RUN/resume_history.yaml (position: e.g. {"step": 120} or {"stage": "main", "epoch": 3})."""
    path = Path(run_dir) / HISTORY_FILE
    entries: list = []
    if path.is_file():
        entries = yaml.safe_load(path.read_text()) or []
        if not isinstance(entries, list):
            raise RecipeError(f"{path}: not a resume history (a YAML list)")
    entries.append({
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "resumed_at": dict(position),
        "changed": {k: {"old": o, "new": n} for k, (o, n) in changed.items()},
    })
    return atomic_write_text(path, yaml.safe_dump(entries, sort_keys=False))
