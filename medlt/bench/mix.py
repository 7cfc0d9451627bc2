"""The "copies + synthetic" arm: the copies control's training set with a synthetic set added on top.

Synthetic images replace nothing here: the manifest holds every row of the copies control
(medlt.bench.copies: the real rows and, per planned image, one copy of a real training image with
the planned label vector) plus every row of a `medlt synth` folder's manifest.csv, which keep their
`source` (synthetic) and provenance columns. So the arm compares "copies + synthetic" with the copies
control on the same re-sampled real set, and the classifier's options that read `source`
(classifier.synthetic_loss_weight, classifier.finish) treat each kind of row as in every other arm.

Written as one medlt manifest (format `manifest`, atomic): OUT/copies_synthetic.csv and
OUT/copies_synthetic.root.txt (the real data.root, which `medlt classify --train-manifest` reads).
Real and copy rows have root=data (paths relative to the real data.root); synthetic rows root=manifest
with `image` relative to OUT, so OUT must be the synth folder or a folder that contains it (no path
may leave its root; the manifest reader checks this again when the images are read).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from medlt.errors import DataError
from medlt.utils.atomic import atomic_write_text

NAME = "copies_synthetic"


def synthetic_set_rows(synth_dir: str | Path, out_dir: str | Path, label_names) -> pd.DataFrame:
    """The rows of SYNTH/manifest.csv (source synthetic, split train), `image` re-based from SYNTH to
    OUT and root=manifest. DataError when the file is missing or empty, a row is not synthetic, or an
    image would leave OUT."""
    synth_dir, out_dir = Path(synth_dir).resolve(), Path(out_dir).resolve()
    path = synth_dir / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{synth_dir}: no manifest.csv (a `medlt synth` output folder)")
    try:
        syn = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        syn = pd.DataFrame()
    if len(syn) == 0:
        raise DataError(f"{path}: the synthetic set is empty")
    missing = [c for c in ("id", "image", "patient_id", "split", "source", *label_names) if c not in syn.columns]
    if missing:
        raise DataError(f"{path}: lacks column(s) {missing}")
    bad = syn.index[syn["source"].str.strip().str.lower() != "synthetic"]
    if len(bad):
        raise DataError(f"{path}:row {int(bad[0]) + 1}: source {syn['source'].iat[int(bad[0])]!r}; a synthetic "
                        f"set's manifest.csv holds synthetic rows only")
    rel = []
    for i, p in enumerate(syn["image"]):
        r = Path(os.path.relpath(synth_dir / p, out_dir)).as_posix()
        if Path(p).is_absolute() or r == ".." or r.startswith("../"):
            raise DataError(f"{path}:row {i + 1}: image {p!r} is not under {out_dir} (write the manifest into "
                            f"the synth folder or a folder containing it)")
        rel.append(r)
    syn["image"] = rel
    syn.insert(syn.columns.get_loc("source"), "root", "manifest")
    return syn


def copies_synthetic_frame(recipe, table, synth_dir: str | Path, out_dir: str | Path,
                           quota: str | None = None) -> pd.DataFrame:
    """Real rows + copy rows (copies_frame: the copies control) + the synthetic rows of `synth_dir`."""
    from medlt.bench.copies import copies_frame

    base = copies_frame(recipe, table, quota)
    syn = synthetic_set_rows(synth_dir, out_dir, table.label_space.names)
    for c in table.label_space.names:
        syn[c] = syn[c].astype(int)
    clash = set(base["id"].astype(str)) & set(syn["id"].astype(str))
    if clash:
        raise DataError(f"synthetic ids clash with real or copy ids: {sorted(clash)[:5]}")
    return pd.concat([base, syn], ignore_index=True, sort=False)


def write_copies_synthetic_manifest(recipe, table, synth_dir: str | Path, out_dir: str | Path | None = None,
                                    quota: str | None = None) -> Path:
    """OUT/copies_synthetic.csv and OUT/copies_synthetic.root.txt (atomic); OUT defaults to `synth_dir`.
    Returns the manifest's path (for `medlt classify --train-manifest`)."""
    from medlt.synth.manifest import real_root

    out_dir = Path(out_dir if out_dir is not None else synth_dir).resolve()
    frame = copies_synthetic_frame(recipe, table, synth_dir, out_dir, quota)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    atomic_write_text(out_dir / f"{NAME}.root.txt", f"{real_root(table.frame, recipe.data.root)}\n")
    return atomic_write_text(out_dir / f"{NAME}.csv", buf.getvalue())
