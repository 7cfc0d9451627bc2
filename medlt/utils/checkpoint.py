"""Checkpoints: atomic save, `weights_only=True` load, content hash.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (so it loads with
weights_only=True): model / EMA / optimizer / scheduler state dicts, the step, RNG states, the
resolved recipe (`recipe_to_dict`) and the label space (`LabelSpace.to_dict`).
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
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
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # what torch raises for objects weights_only will not build
        raise CheckpointError(f"{path}: not a medlt checkpoint: it contains pickled Python objects; refused "
                              f"(medlt loads tensors and plain values only, weights_only=True)") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({e.strerror or e})") from None
    except Exception as e:  # corrupt or truncated (torch raises RuntimeError / EOFError / ...)
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated; "
                              f"{e.__class__.__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a medlt checkpoint (top level is {type(state).__name__})")
    return state


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()
