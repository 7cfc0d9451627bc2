"""Atomic writes: write to a temporary name in the same folder, fsync, then rename.

A crash (even SIGKILL) leaves either the old file or the new one, never a truncated file.
Temporary names start with '.' and end in '.tmp' so globs for outputs never pick them up.
Written files get the mode any other tool would give them: 0666 minus the umask (0644 under the
usual umask 022), not mkstemp's private 0600. A failed write (read-only folder, full disk, a file
where a folder should be) raises OutputError naming the path and the cause, and leaves no
temporary file behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from medlt.errors import OutputError


def current_umask() -> int:
    """This process's umask (read from /proc on Linux; elsewhere set-and-restore)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_error(path: str | Path, e: OSError) -> OutputError:
    """OutputError 'cannot write PATH: CAUSE' (CAUSE names the blocking path when it is another)."""
    cause = e.strerror or e.__class__.__name__
    other = e.filename if e.filename is not None and str(e.filename) != str(path) else None
    if other is not None and not Path(str(other)).name.startswith(f".{Path(path).name}."):
        cause += f" ({other})"
    return OutputError(f"cannot write {path}: {cause}")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`.

    The rename alone guarantees that a killed process never leaves a truncated file. `fsync`
    additionally survives power loss; bulk image writers turn it off (it costs more than encoding
    a small image), checkpoints, manifests and reports keep it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise output_error(path, e) from e
    tmp_path = Path(tmp)
    try:
        try:
            os.fchmod(fd, 0o666 & ~current_umask())
        finally:
            os.close(fd)
        try:
            yield tmp_path
        except OSError as e:
            if e.filename is None or str(e.filename) == str(tmp_path):
                raise output_error(path, e) from e
            raise
        try:
            if fsync:
                with open(tmp_path, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(tmp_path, path)
        except OSError as e:
            raise output_error(path, e) from e
    finally:
        with contextlib.suppress(OSError):
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
