"""Checkpoints: atomic save, `weights_only=True` load, content hash.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (so it loads with
weights_only=True): model / EMA / optimizer / scheduler state dicts, the step, RNG states, the
resolved recipe (`recipe_to_dict`) and the label space (`LabelSpace.to_dict`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from medlt.errors import CheckpointError
from medlt.utils.atomic import atomic_write_with


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return atomic_write_with(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt, truncated or unsafe pickle
        raise CheckpointError(f"{path}: cannot load checkpoint ({e.__class__.__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a medlt checkpoint (top level is {type(state).__name__})")
    return state


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()
