"""Atomic writes: write to a temporary name in the same folder, fsync, then rename.

A crash (even SIGKILL) leaves either the old file or the new one, never a truncated file.
Temporary names start with '.' and end in '.tmp' so globs for outputs never pick them up.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`.

    The rename alone guarantees that a killed process never leaves a truncated file. `fsync`
    additionally survives power loss; bulk image writers turn it off (it costs more than encoding
    a small image), checkpoints, manifests and reports keep it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | Path, writer: Callable[[io.BufferedWriter], None]) -> Path:
    """`writer(f)` writes into an open binary file that replaces `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            writer(f)
    return Path(path)
