"""DIR/manifest.csv (synthetic rows) and DIR/merged.csv (real rows + synthetic rows).

Both are medlt's `manifest` format (docs/datasets.md): `id`, `image`, `patient_id`, `split`,
one 0/1 column per class, `source`, then extra columns (seed, checkpoint_sha256, guidance_scale,
sampler, steps; with a filter: redraw_attempt, replaces; best of K > 1 (medlt.synth.select):
candidates (K), candidate (the kept candidate's index), candidate_seed, candidate_rank (0 = the
selector's highest score among the K), selection_score; CT: spacing_x/y/z, rescale_slope,
rescale_intercept).

- manifest.csv: `image` is relative to DIR (use it with data.root = DIR).
- merged.csv: real rows (root=data) keep their split and their `image` path relative to the real
  data.root, recorded in DIR/merged.root.txt; synthetic rows (root=manifest) have `image` relative
  to DIR, the folder holding merged.csv, and all go to the training split, so validation and test
  stay real. The manifest reader checks each row against its own root (after following symlinks),
  so neither kind of path may leave its folder; the two folders may live on different trees.
DIR/merged.recipe.yaml is the input recipe with data.format: manifest, data.root = the real
data.root and data.labels = DIR/merged.csv: `medlt data validate DIR/merged.recipe.yaml` works as
is, and `medlt classify --train-manifest DIR/merged.csv` finds data.root in merged.root.txt.
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
from medlt.synth.guidance import job_scales
from medlt.synth.jobs import Job
from medlt.synth.select import SELECTION_COLUMNS
from medlt.synth.writers import OutputLayout, synthetic_patient_id
from medlt.utils.atomic import atomic_write_text

CT_COLUMNS = ("spacing_x", "spacing_y", "spacing_z", "rescale_slope", "rescale_intercept")
PROVENANCE_COLUMNS = ("seed", "checkpoint_sha256", "guidance_scale", "sampler", "steps")
#: with a filter (quality, near-copies): 0 = the planned image, k = its k-th re-draw; the dropped id it replaces
REDRAW_COLUMNS = ("redraw_attempt", "replaces")
DROPPED_COLUMNS = ("id", "seed", "class", "classes", "round", "attempt", "reason", "nearest_real_id", "ratio",
                   "exact_copy", "replaced_by")


def _csv_text(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def synthetic_rows(jobs: Sequence[Job], layout: OutputLayout, label_space: LabelSpace, train_split: str,
                   settings: dict[str, Any], selected: dict[str, dict] | None = None) -> pd.DataFrame:
    """`selected`: best of K > 1, each job id's kept candidate {candidate, candidate_seed, rank, score}."""
    rows = []
    scales = job_scales(jobs, settings)  # one scale, or each row's group scale (--guidance-from)
    filtered = bool(settings.get("filter") or settings.get("near_copies"))
    k = int((settings.get("selection") or {}).get("candidates_per_image", 1))
    for j, scale in zip(jobs, scales, strict=True):
        row: dict[str, Any] = {"id": j.id, "image": layout.relpath(j), "patient_id": synthetic_patient_id(j),
                               "split": train_split}
        row.update({n: int(v) for n, v in zip(label_space.names, j.label, strict=True)})
        row.update({"source": "synthetic", "seed": str(j.seed),
                    "checkpoint_sha256": settings.get("checkpoint_sha256"),
                    "guidance_scale": scale, "sampler": settings.get("sampler"),
                    # as text: next to real rows (no value) a number column would turn 5 into "5.0"
                    "steps": None if settings.get("steps") is None else str(int(settings["steps"]))})
        if filtered:
            row.update({"redraw_attempt": str(j.attempt), "replaces": j.replaces})
        if k > 1:
            row.update(_selection_columns(j, k, selected))
        row.update(layout.extra_columns(j))
        rows.append(row)
    cols = ["id", "image", "patient_id", "split", *label_space.names, "source", *PROVENANCE_COLUMNS]
    if filtered:
        cols += list(REDRAW_COLUMNS)
    if k > 1:
        cols += list(SELECTION_COLUMNS)
    if layout.is_volume:
        cols += list(CT_COLUMNS)
    return pd.DataFrame(rows, columns=cols)


def _selection_columns(job: Job, k: int, selected: dict[str, dict] | None) -> dict[str, str]:
    """The kept candidate of `job` as text columns (next to real rows a number column would turn 5
    into "5.0")."""
    rec = (selected or {}).get(job.id)
    if rec is None:
        raise DataError(f"no selection record for synthetic image {job.id} (best of {k}); re-run the same "
                        f"command to finish")
    return {"candidates": str(k), "candidate": str(int(rec["candidate"])), "candidate_seed": str(rec["candidate_seed"]),
            "candidate_rank": str(int(rec["rank"])), "selection_score": f"{float(rec['score']):.6g}"}


def write_dropped(out_dir: Path, dropped: Sequence[dict]) -> Path:
    """DIR/dropped.csv: every image a filter left out (no file was written for it): why
    (near-copy: its nearest real training image and distance ratio; low-confidence), in which round,
    and the id of the image that re-draws it."""
    df = pd.DataFrame(list(dropped), columns=list(DROPPED_COLUMNS))
    return atomic_write_text(Path(out_dir) / "dropped.csv", _csv_text(df))


def real_root(frame: pd.DataFrame, default: str | Path | None = None) -> Path:
    """The one folder every real row's image path is relative to (the table's data.root; `default`
    for a frame without the per-row column)."""
    from medlt.data.sources.common import PATH_ROOT

    if PATH_ROOT in frame.columns:
        roots = sorted(set(frame[PATH_ROOT].astype(str)))
    else:
        roots = [] if default is None else [str(default)]
    if len(roots) != 1 or not roots[0]:
        raise DataError(f"the real table's image paths are relative to {len(roots)} folder(s) {roots[:3]}; "
                        f"merged.csv needs every real row under one data.root (a recipe that already "
                        f"reads a merged.csv cannot be merged again)")
    return Path(roots[0]).resolve()


def real_rows(frame: pd.DataFrame, label_space: LabelSpace, root: Path) -> pd.DataFrame:
    """The real table's rows in manifest form (root=data), image paths relative to `root`."""
    from medlt.data.sources.common import PATH_ROOT

    need = ["id", "image", "patient_id", "split", *label_space.names]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DataError(f"real table lacks column(s) {missing}")
    out = frame[need].copy()
    bases = frame[PATH_ROOT] if PATH_ROOT in frame.columns else [str(root)] * len(frame)
    # the table's paths are data.root/<path from the label file>: take that relative part back
    rel = [Path(os.path.relpath(p, b)).as_posix() for p, b in zip(frame["image"], bases, strict=True)]
    outside = [r for r in rel if r == ".." or r.startswith("../")]
    if outside:
        raise DataError(f"real image path {outside[0]!r} is not under data.root {root}")
    out["image"] = rel
    out["root"] = "data"
    out["source"] = frame["source"].astype(str) if "source" in frame.columns else "real"
    for c in CT_COLUMNS:
        if c in frame.columns:
            out[c] = frame[c]
    return out


def write_manifests(out_dir: Path, jobs: Sequence[Job], layout: OutputLayout, label_space: LabelSpace,
                    train_split: str, settings: dict[str, Any], real_frame: pd.DataFrame | None,
                    *, image_shape: Sequence[int] | None = None,
                    data_root: str | Path | None = None,
                    selected: dict[str, dict] | None = None) -> dict[str, Path]:
    """Write manifest.csv, and with a real table merged.csv + merged.root.txt. Returns the paths.
    `data_root`: the real data.root, for a frame without per-row roots (medlt.data.table's have).
    `selected`: best of K > 1, the kept candidate of each job id (synthetic_rows)."""
    out_dir = Path(out_dir).resolve()
    syn = synthetic_rows(jobs, layout, label_space, train_split, settings, selected)
    written = {"manifest": atomic_write_text(out_dir / "manifest.csv", _csv_text(syn))}
    if layout.is_volume:
        written.update(_ct_rate_side_files(out_dir, syn, label_space, image_shape))
    if real_frame is None:
        return written
    root = real_root(real_frame, data_root)
    real = real_rows(real_frame, label_space, root)
    syn_merged = syn.copy()
    syn_merged.insert(syn_merged.columns.get_loc("source"), "root", "manifest")  # relative to DIR
    clash = set(real["id"].astype(str)) & set(syn_merged["id"].astype(str))
    if clash:
        raise DataError(f"synthetic ids clash with real ids: {sorted(clash)[:5]}")
    merged = pd.concat([real, syn_merged], ignore_index=True, sort=False)
    written["merged"] = atomic_write_text(out_dir / "merged.csv", _csv_text(merged))
    written["merged_root"] = atomic_write_text(out_dir / "merged.root.txt", f"{root}\n")
    return written


def write_merged_recipe(out_dir: Path, recipe, root: Path, label_names: Sequence[str]) -> Path:
    """DIR/merged.recipe.yaml: the input recipe reading merged.csv as a `manifest`; `root` is the
    real data.root (synthetic rows say root=manifest: relative to DIR)."""
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
