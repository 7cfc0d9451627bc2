"""Per-image predictions of an evaluation: DIR/predictions_<role>.csv (written atomically), so two
evaluations on the same test images can be compared pairwise (`medlt report DIR1 DIR2`).

Columns, one row per test image in loader order:
- single-label: `id`, `true_class`, `predicted_class` (class names; predicted = argmax), then
  `prob:<class>` for every class (softmax probabilities);
- multi-label: `id`, then `true:<class>` (0/1) for every class, `predicted:<class>` (0/1, score >=
  the recorded threshold), `score:<class>` (sigmoid probabilities).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.labels import LabelSpace
from medlt.errors import DataError
from medlt.utils.atomic import atomic_write_text


def predictions_file(out_dir: str | Path, role: str) -> Path:
    return Path(out_dir) / f"predictions_{role}.csv"


def predictions_frame(label_space: LabelSpace, targets, probs, ids, threshold: float = 0.5) -> pd.DataFrame:
    names = list(label_space.names)
    t, p = np.asarray(targets), np.asarray(probs, dtype=np.float64)
    cols: dict = {"id": [str(i) for i in ids]}
    if label_space.multi_label:
        for k, n in enumerate(names):
            cols[f"true:{n}"] = (t[:, k] > 0.5).astype(int)
        for k, n in enumerate(names):
            cols[f"predicted:{n}"] = (p[:, k] >= threshold).astype(int)
        for k, n in enumerate(names):
            cols[f"score:{n}"] = p[:, k]
    else:
        cols["true_class"] = [names[int(c)] for c in t.ravel()]
        cols["predicted_class"] = [names[int(c)] for c in p.argmax(1)]
        for k, n in enumerate(names):
            cols[f"prob:{n}"] = p[:, k]
    return pd.DataFrame(cols)


def write_predictions(out_dir: str | Path, role: str, label_space: LabelSpace, targets, probs, ids,
                      threshold: float = 0.5) -> Path:
    frame = predictions_frame(label_space, targets, probs, ids, threshold)
    return atomic_write_text(predictions_file(out_dir, role), frame.to_csv(index=False, float_format="%.8g"))


def read_predictions(path: str | Path, label_space: LabelSpace) -> dict:
    """{"ids": [...], "true": (N,) int or (N, K) 0/1, "predicted": (N,) int (single-label),
    "scores": (N, K)} from a predictions CSV; DataError naming the file on a bad one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no per-image predictions (re-run `medlt evaluate` to write them)")
    df = pd.read_csv(path, dtype={"id": str})
    names = list(label_space.names)
    if label_space.multi_label:
        need = ["id"] + [f"true:{n}" for n in names] + [f"score:{n}" for n in names]
    else:
        need = ["id", "true_class", "predicted_class"] + [f"prob:{n}" for n in names]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing[:3]} (written for other classes?)")
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: image id '{dup.iloc[0]}' appears more than once")
    out = {"ids": df["id"].tolist()}
    if label_space.multi_label:
        out["true"] = df[[f"true:{n}" for n in names]].to_numpy(np.int64)
        out["scores"] = df[[f"score:{n}" for n in names]].to_numpy(np.float64)
    else:
        index = {n: k for k, n in enumerate(names)}
        for col in ("true_class", "predicted_class"):
            bad = df[col][~df[col].isin(index)]
            if len(bad):
                raise DataError(f"{path}: column {col} has unknown class '{bad.iloc[0]}'")
        out["true"] = df["true_class"].map(index).to_numpy(np.int64)
        out["predicted"] = df["predicted_class"].map(index).to_numpy(np.int64)
        out["scores"] = df[[f"prob:{n}" for n in names]].to_numpy(np.float64)
    return out
