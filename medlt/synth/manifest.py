"""DIR/manifest.csv (synthetic rows) and DIR/merged.csv (real rows + synthetic rows).

Both are medlt's `manifest` format (docs/datasets.md): `id`, `image`, `patient_id`, `split`,
one 0/1 column per class, `source`, then extra columns (seed, checkpoint_sha256, guidance_scale,
sampler, steps; CT: spacing_x/y/z, rescale_slope, rescale_intercept).

- manifest.csv: `image` is relative to DIR (use it with data.root = DIR).
- merged.csv: `image` is relative to the *common root* of DIR and every real image (the deepest
  folder holding both; recorded in DIR/merged.root.txt and used as data.root in
  DIR/merged.recipe.yaml). Paths never leave that root, so the manifest rule "paths stay under
  data.root" holds. Real rows keep their split; synthetic rows all go to the training split, so
  validation and test stay real.
DIR/merged.recipe.yaml is the input recipe with data.format: manifest, data.root = the common root
and data.labels = merged.csv: `medlt data validate DIR/merged.recipe.yaml` works as is.
All files are written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medlt.data.labels import LabelSpace
from medlt.errors import DataError
from medlt.synth.jobs import Job
from medlt.synth.writers import OutputLayout, synthetic_patient_id
from medlt.utils.atomic import atomic_write_text

CT_COLUMNS = ("spacing_x", "spacing_y", "spacing_z", "rescale_slope", "rescale_intercept")
PROVENANCE_COLUMNS = ("seed", "checkpoint_sha256", "guidance_scale", "sampler", "steps")


def _csv_text(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def synthetic_rows(jobs: Sequence[Job], layout: OutputLayout, label_space: LabelSpace, train_split: str,
                   settings: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for j in jobs:
        row: dict[str, Any] = {"id": j.id, "image": layout.relpath(j), "patient_id": synthetic_patient_id(j),
                               "split": train_split}
        row.update({n: int(v) for n, v in zip(label_space.names, j.label, strict=True)})
        row.update({"source": "synthetic", "seed": str(j.seed),
                    "checkpoint_sha256": settings.get("checkpoint_sha256"),
                    "guidance_scale": settings.get("guidance_scale"), "sampler": settings.get("sampler"),
                    "steps": settings.get("steps")})
        row.update(layout.extra_columns(j))
        rows.append(row)
    cols = ["id", "image", "patient_id", "split", *label_space.names, "source", *PROVENANCE_COLUMNS]
    if layout.is_volume:
        cols += list(CT_COLUMNS)
    return pd.DataFrame(rows, columns=cols)


def common_root(paths: Sequence[str | Path]) -> Path:
    """Deepest folder that holds every path (absolute)."""
    return Path(os.path.commonpath([str(Path(p).resolve()) for p in paths]))


def real_rows(frame: pd.DataFrame, label_space: LabelSpace, root: Path) -> pd.DataFrame:
    """The real table's rows in manifest form, with image paths relative to `root`."""
    need = ["id", "image", "patient_id", "split", *label_space.names]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DataError(f"real table lacks column(s) {missing}")
    out = frame[need].copy()
    out["image"] = [os.path.relpath(Path(p).resolve(), root) for p in frame["image"]]
    out["source"] = frame["source"].astype(str) if "source" in frame.columns else "real"
    for c in CT_COLUMNS:
        if c in frame.columns:
            out[c] = frame[c]
    return out


def write_manifests(out_dir: Path, jobs: Sequence[Job], layout: OutputLayout, label_space: LabelSpace,
                    train_split: str, settings: dict[str, Any], real_frame: pd.DataFrame | None,
                    *, image_shape: Sequence[int] | None = None) -> dict[str, Path]:
    """Write manifest.csv, and with a real table merged.csv + merged.root.txt. Returns the paths."""
    out_dir = Path(out_dir).resolve()
    syn = synthetic_rows(jobs, layout, label_space, train_split, settings)
    written = {"manifest": atomic_write_text(out_dir / "manifest.csv", _csv_text(syn))}
    if layout.is_volume:
        written.update(_ct_rate_side_files(out_dir, syn, label_space, image_shape))
    if real_frame is None:
        return written
    root = common_root([out_dir, *[Path(p).parent for p in real_frame["image"].unique()]])
    real = real_rows(real_frame, label_space, root)
    syn_merged = syn.copy()
    syn_merged["image"] = [os.path.relpath(out_dir / p, root) for p in syn["image"]]
    clash = set(real["id"].astype(str)) & set(syn_merged["id"].astype(str))
    if clash:
        raise DataError(f"synthetic ids clash with real ids: {sorted(clash)[:5]}")
    merged = pd.concat([real, syn_merged], ignore_index=True, sort=False)
    written["merged"] = atomic_write_text(out_dir / "merged.csv", _csv_text(merged))
    written["merged_root"] = atomic_write_text(out_dir / "merged.root.txt", f"{root}\n")
    return written


def write_merged_recipe(out_dir: Path, recipe, root: Path, label_names: Sequence[str]) -> Path:
    """DIR/merged.recipe.yaml: the input recipe reading merged.csv as a `manifest`."""
    from medlt.recipe import dump_resolved, recipe_from_resolved, recipe_to_dict

    d = recipe_to_dict(recipe)
    d["name"] = f"{d['name']}-merged-synthetic"
    d["data"]["format"] = "manifest"
    d["data"]["classes"] = list(label_names)
    d["data"]["root"] = str(root)
    d["data"]["labels"] = str(Path(out_dir).resolve() / "merged.csv")
    return dump_resolved(recipe_from_resolved(d), Path(out_dir) / "merged.recipe.yaml")


def _ct_rate_side_files(out_dir: Path, syn: pd.DataFrame, label_space: LabelSpace,
                        image_shape: Sequence[int] | None) -> dict[str, Path]:
    """CT-RATE-style metadata and label CSVs for the synthetic volumes (a CT-RATE reader needs
    VolumeName, XYSpacing, ZSpacing, RescaleSlope, RescaleIntercept)."""
    names = [Path(p).name for p in syn["image"]]
    meta = pd.DataFrame({
        "VolumeName": names,
        "XYSpacing": [f"[{x:g}, {y:g}]" for x, y in zip(syn["spacing_x"], syn["spacing_y"], strict=True)],
        "ZSpacing": syn["spacing_z"].astype(float),
        "RescaleSlope": syn["rescale_slope"].astype(float),
        "RescaleIntercept": syn["rescale_intercept"].astype(float),
    })
    if image_shape is not None and len(image_shape) >= 4:
        meta["Rows"], meta["Columns"], meta["NumberofSlices"] = image_shape[1], image_shape[2], image_shape[3]
    labels = pd.concat([pd.DataFrame({"VolumeName": names}), syn[list(label_space.names)]], axis=1)
    return {
        "ct_metadata": atomic_write_text(out_dir / "metadata" / "synthetic_metadata.csv", _csv_text(meta)),
        "ct_labels": atomic_write_text(out_dir / "multi_abnormality_labels" / "synthetic_predicted_labels.csv",
                                       _csv_text(labels)),
    }
