"""Checkpoints: atomic save, `weights_only=True` load, content hash.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (so it loads with
weights_only=True): model / EMA / optimizer / scheduler state dicts, the step, RNG states, the
resolved recipe (`recipe_to_dict`) and the label space (`LabelSpace.to_dict`).
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from medlt.errors import CheckpointError
from medlt.utils.atomic import atomic_write_with


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return atomic_write_with(path, lambda f: torch.save(state, f))


#: what a checkpoint is, for errors about files that are none
WHAT_A_CHECKPOINT_IS = ("a checkpoint is the .pt file medlt writes (PyTorch's zip format of tensors and plain "
                        "values), e.g. RUN/checkpoints/last.pt of `medlt train` or RUN/checkpoints/best.pt of "
                        "`medlt classify`")


def _other_kind_of_file(path: Path) -> str | None:
    """What the file looks like when its first bytes show it is no PyTorch checkpoint (JSON, text, an
    image, a zip archive without PyTorch's data.pkl, ...); None when it may be one (torch decides)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # a damaged zip: torch reports it as corrupt or truncated
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return None
        return "a zip archive without PyTorch's data.pkl"
    if head[:1] == b"\x80":
        return None  # a pickle: PyTorch's legacy format
    for magic, what in ((b"\x1f\x8b", "gzip-compressed data (e.g. a .nii.gz volume)"),
                        (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image")):
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not a character cut at the end of the first 4096 bytes
            return "binary data of an unknown kind (no PyTorch zip or pickle header)"
        text = head[: e.start].decode("utf-8")
    start = text.lstrip()[:1]
    if start in ("{", "["):
        return "JSON text" if start == "{" else "JSON text (a list)"
    return "a text file"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        other = _other_kind_of_file(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({e.strerror or e})") from None
    if other is not None:
        raise CheckpointError(f"{path}: not a checkpoint: the file is {other}; {WHAT_A_CHECKPOINT_IS}")
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
