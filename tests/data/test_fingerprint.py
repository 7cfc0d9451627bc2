"""medlt.data.fingerprint on NIH-layout data written at test time: equal for the same data, and
each kind of change (a label, a split row, an image rewritten in place, only its mtime) shows."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from medlt.data.fingerprint import data_fingerprint, describe_change
from tests.data.builders import recipe, write_nih


def _setup(tmp_path):
    root = tmp_path / "nih"
    files = write_nih(root)
    return root, files, recipe(tmp_path, format="nih-cxr-lt", root=str(root), labels=str(root))


def test_same_data_same_fingerprint_and_counts(tmp_path):
    root, _, r = _setup(tmp_path)
    a, b = data_fingerprint(r), data_fingerprint(r)
    assert a == b and describe_change(a, b) == ""
    assert a["rows"] == a["images"] == 36
    assert a["image_bytes"] == sum(p.stat().st_size for p in root.glob("*.png"))
    assert len(a["sha256"]) == 64


def test_a_changed_label_or_row_changes_the_table_part(tmp_path):
    _, files, r = _setup(tmp_path)
    a = data_fingerprint(r)
    df = pd.read_csv(files["train"])
    cols = [c for c in df.columns if c not in ("id", "subject_id")]
    df.loc[0, cols] = 0
    df.loc[0, cols[-1]] = 1  # another class for one training image
    df.to_csv(files["train"], index=False)
    b = data_fingerprint(r)
    assert b["table_sha256"] != a["table_sha256"] and b["images_sha256"] == a["images_sha256"]
    assert b["sha256"] != a["sha256"]
    assert describe_change(a, b) == "the split/label tables changed (36 -> 36 rows)"
    df.iloc[1:].to_csv(files["train"], index=False)  # a row fewer
    c = data_fingerprint(r)
    assert "(36 -> 35 rows)" in describe_change(a, c)


def test_an_image_rewritten_or_touched_changes_the_image_part(tmp_path):
    from medlt.data.io import write_png

    root, _, r = _setup(tmp_path)
    a = data_fingerprint(r)
    img = root / "train_0003.png"
    st = img.stat()
    write_png(img, np.random.default_rng(0).random((48, 40)).astype(np.float32))  # other pixels, same name
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime: the size differs
    b = data_fingerprint(r)
    assert img.stat().st_size != st.st_size and img.stat().st_mtime_ns == st.st_mtime_ns
    assert b["images_sha256"] != a["images_sha256"] and b["table_sha256"] == a["table_sha256"]
    assert describe_change(a, b).startswith("image files changed size or modification time")
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # only the mtime
    c = data_fingerprint(r)
    assert c["images_sha256"] != b["images_sha256"] and c["sha256"] != b["sha256"]
    assert c["table_sha256"] == a["table_sha256"]
