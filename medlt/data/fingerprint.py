"""A cheap fingerprint of a recipe's data: did the data under data.root change since a run?

Two parts, both cheap (no image is opened or read):

- the canonical table (medlt.data.table.load_table: every row's id, image path, split, patient,
  labels, ...) hashed as CSV text, so a changed split file, label or row count shows;
- every image file's size and modification time (os.stat), hashed in table order, so an image
  replaced or rewritten in place shows even when the tables did not change.

`sha256` combines both; the counts are kept beside it so that a message can say what differs.
A bench records it with every finished cell (cell.json) and refuses to mix cells run on other data;
`train --resume` can compare it the same way.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

VERSION = 1


def _stat_line(path: str) -> tuple[str, int]:
    """'path\\tsize\\tmtime_ns' (a folder: the sum of its files' sizes and their latest mtime) and its size."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}\t-1\t-1\n", 0
    size, mtime = st.st_size, st.st_mtime_ns
    if os.path.isdir(path):  # e.g. a DICOM series folder
        size, mtime = 0, st.st_mtime_ns
        for f in sorted(Path(path).rglob("*")):
            if f.is_file():
                s = f.stat()
                size += s.st_size
                mtime = max(mtime, s.st_mtime_ns)
    return f"{path}\t{size}\t{mtime}\n", size


def table_fingerprint(table) -> dict:
    """The fingerprint of a loaded medlt.data.table.Table (see the module docstring)."""
    frame = table.frame
    table_sha = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    h = hashlib.sha256()
    n_bytes = 0
    paths = [str(p) for p in frame["image"]] if "image" in frame.columns else []
    for p in paths:
        line, size = _stat_line(p)
        h.update(line.encode())
        n_bytes += size
    images_sha = h.hexdigest()
    both = hashlib.sha256(f"{VERSION}\n{table_sha}\n{images_sha}\n".encode()).hexdigest()
    return {"version": VERSION, "sha256": both, "table_sha256": table_sha, "rows": int(len(frame)),
            "images_sha256": images_sha, "images": len(paths), "image_bytes": int(n_bytes)}


def data_fingerprint(recipe) -> dict:
    """The fingerprint of the recipe's data (loads its table; DataError / ValidationFailed as load_table)."""
    from medlt.data.table import load_table

    return table_fingerprint(load_table(recipe))


def describe_change(old: dict, new: dict) -> str:
    """What differs between two fingerprints, in words ('' when they are equal)."""
    if old.get("sha256") == new.get("sha256"):
        return ""
    parts = []
    if old.get("table_sha256") != new.get("table_sha256"):
        parts.append(f"the split/label tables changed ({old.get('rows')} -> {new.get('rows')} rows)")
    if old.get("images_sha256") != new.get("images_sha256"):
        parts.append(f"image files changed size or modification time ({old.get('images')} files, "
                     f"{old.get('image_bytes')} bytes -> {new.get('images')} files, {new.get('image_bytes')} bytes)")
    return "; ".join(parts) or "the fingerprint changed"
