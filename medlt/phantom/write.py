"""`write_phantom`: one entry point for the three layouts, with a marker file and a summary."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medlt.errors import DataError
from medlt.utils.atomic import atomic_write_text

LAYOUTS = ("nih-cxr-lt", "mimic-cxr-lt", "ct-rate")
#: per-layout defaults (run in seconds on one CPU core)
DEFAULTS = {
    "nih-cxr-lt": {"num_images": 800, "image_size": 64},
    "mimic-cxr-lt": {"num_images": 800, "image_size": 64},
    "ct-rate": {"num_images": 48, "image_size": 32},
}
MARKER = "medlt_phantom.json"
#: written before the first image and removed with the last step: a folder holding it is the partial
#: output of a phantom that was stopped; writing a phantom there again restarts it
PARTIAL = "medlt_phantom.partial.json"


@dataclass
class PhantomSummary:
    layout: str
    out_dir: Path
    images_per_split: dict[str, int]
    parameters: dict
    files: list[str] = field(default_factory=list)

    def line(self) -> str:
        splits = ", ".join(f"{s} {n}" for s, n in self.images_per_split.items())
        kind = "volumes" if self.layout == "ct-rate" else "images"
        return (f"{self.layout} phantom: {sum(self.images_per_split.values())} {kind} ({splits}) in "
                f"{self.out_dir}; use it with --set data.root={self.out_dir} "
                f"--set data.labels={self.out_dir}{self.count_note()}")

    def count_note(self) -> str:
        """Why the training split does not hold exactly --num-images items ("" when it does)."""
        asked, got = self.parameters.get("num_images"), self.images_per_split.get("train")
        if asked is None or got is None or asked == got:
            return ""
        if self.layout == "ct-rate":
            return (f" (--num-images {asked} counts training scans; some scans have a second "
                    f"reconstruction, so train has {got} volumes)")
        return (f" (train has {got} images, not {asked}: the long-tail counts n_c = n_max * "
                f"r^(c/(C-1)) are rounded and every class gets at least 1 image)")


def _no_progress(it: Iterable, **_) -> Iterable:
    return it


def write_phantom(layout: str, out_dir: str | Path, *, num_images: int | None = None,
                  image_size: int | None = None, imbalance_ratio: float = 0.01, seed: int = 0,
                  multi_label: bool = False, per_class_val: int = 5, per_class_test: int = 10,
                  test_fraction: float = 0.25, per_class: int | None = None,
                  train_labels: Sequence[Sequence[int]] | None = None,
                  progress: Callable | None = None) -> PhantomSummary:
    """Write a long-tailed phantom of `layout` ("nih-cxr-lt", "mimic-cxr-lt", "ct-rate") to `out_dir`.

    num_images: training images (CT-RATE: training scans); default per layout (DEFAULTS).
    image_size: square image side in pixels (CT: X = Y = size, Z = 0.75 * size).
    imbalance_ratio: r = n_min / n_max (0 < r <= 1; > 1 is read as n_max / n_min).
    multi_label: NIH only: the miccai2023 multi-label CSVs (train/val/test); CT-RATE is always
    multi-label; MIMIC refuses it. per_class_val / per_class_test: images per class in the
    balanced-val / balanced-test splits; test_fraction: size of the long-tailed test split relative
    to train. progress: a tqdm-like wrapper `progress(iterable, total=, desc=, unit=)`.
    per_class: a *balanced* set instead of a long tail (balanced_counts.py): exactly this many
    training images per class (NIH multi-label: images whose primary finding is the class; CT-RATE:
    scans positive for the class); excludes `num_images` and sets the imbalance ratio to 1.
    train_labels: NIH and CT-RATE only: the training split is exactly these label vectors (0/1 per
    class, in the layout's class order), one image (CT: one scan, one reconstruction) each, in this
    order; the other splits as usual. Excludes `num_images` and `per_class`; the marker records
    their number and sha256 (`train_labels_sha256`). Used by the bench's ideal arm (medlt.bench.ideal).

    `out_dir` must be empty, missing, or a previous phantom (it holds medlt_phantom.json); files of
    that previous phantom that the new one does not write are removed, nothing else is touched.
    A phantom stopped while writing (killed, interrupted) leaves medlt_phantom.partial.json instead:
    writing again into that folder (the same command) restarts it and removes what the stopped run
    wrote and the new one does not; files that were there before the stopped run are kept as above.
    """
    from medlt.phantom.counts import normalize_ratio

    if layout not in LAYOUTS:
        from medlt.registry import did_you_mean

        raise DataError(f"unknown phantom layout '{layout}'; {did_you_mean(layout, LAYOUTS)}")
    out = Path(out_dir)
    labels_sha = None
    if train_labels is not None:
        train_labels, labels_sha = check_train_labels(layout, train_labels, multi_label,
                                                       num_images=num_images, per_class=per_class)
        num_images = len(train_labels)
    if per_class is not None:
        from medlt.phantom.balanced_counts import balanced_options

        num_images, imbalance_ratio, test_fraction = balanced_options(
            layout, per_class, num_images=num_images, per_class_test=per_class_test)
    num_images = DEFAULTS[layout]["num_images"] if num_images is None else int(num_images)
    image_size = DEFAULTS[layout]["image_size"] if image_size is None else int(image_size)
    if num_images < 1:
        raise DataError(f"--num-images must be >= 1, got {num_images}")
    if not 16 <= image_size <= 1024 or (layout == "ct-rate" and not 16 <= image_size <= 256):
        raise DataError(f"--image-size {image_size} out of range (16..1024; CT 16..256)")
    try:
        normalize_ratio(imbalance_ratio)
    except ValueError as e:
        raise DataError(f"--imbalance-ratio: {e}") from None
    if per_class_val < 1 or per_class_test < 1 or not 0 < test_fraction <= 1:
        raise DataError("per_class_val/per_class_test must be >= 1 and 0 < test_fraction <= 1")
    if layout == "mimic-cxr-lt" and multi_label:
        raise DataError("the MIMIC-CXR-LT phantom is single-label only (the 26-class multi-label "
                        "CXR-LT 2023 release is not modelled); drop --multi-label")
    claim = _claim_folder(out)  # before any file is written
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or _no_progress
    params = {"layout": layout, "num_images": num_images, "image_size": image_size,
              "imbalance_ratio": float(imbalance_ratio), "seed": int(seed),
              "multi_label": bool(multi_label or layout == "ct-rate"), "per_class_val": per_class_val,
              "per_class_test": per_class_test, "test_fraction": test_fraction}
    if per_class is not None:
        params["per_class"] = int(per_class)
    if labels_sha is not None:
        params["train_labels_sha256"] = labels_sha
    atomic_write_text(out / PARTIAL, json.dumps({"generator": "medlt phantom", "parameters": params, **claim},
                                                indent=1) + "\n")
    (out / MARKER).unlink(missing_ok=True)  # from here on the folder is not a complete phantom
    if layout == "nih-cxr-lt":
        from medlt.phantom.cxr_layouts import write_nih

        counts, written = write_nih(out, num_images=num_images, image_size=image_size,
                           imbalance_ratio=imbalance_ratio, seed=seed, multi_label=multi_label,
                           per_class_val=per_class_val, per_class_test=per_class_test,
                           test_fraction=test_fraction, progress=progress, train_labels=train_labels)
    elif layout == "mimic-cxr-lt":
        from medlt.phantom.cxr_layouts import write_mimic

        counts, written = write_mimic(out, num_images=num_images, image_size=image_size,
                             imbalance_ratio=imbalance_ratio, seed=seed, multi_label=False,
                             per_class_val=per_class_val, per_class_test=per_class_test,
                             test_fraction=test_fraction, progress=progress)
    else:
        from medlt.phantom.ct_layout import write_ct_rate

        counts, written = write_ct_rate(out, num_images=num_images, image_size=image_size,
                               imbalance_ratio=imbalance_ratio, seed=seed, progress=progress,
                               train_labels=train_labels)
    written = sorted(written)
    # remove what an earlier phantom (or a stopped run) wrote here and this one did not; files that
    # were in the folder before and are not an earlier phantom's stay
    keep = set(written) | set(claim["foreign_files"]) | {MARKER, PARTIAL}
    emptied: set[Path] = set()
    for rel in sorted(set(_files(out)) - keep):
        p = out / rel
        p.unlink()
        emptied.update(q for q in p.parents if out in q.parents)
    for d in sorted(emptied, key=lambda q: -len(q.parts)):  # folders only those files lived in
        if d.is_dir() and not any(d.iterdir()):
            os.rmdir(d)
    atomic_write_text(out / MARKER, json.dumps({"generator": "medlt phantom", "parameters": params,
                                                "images_per_split": counts, "files": written},
                                               indent=1) + "\n")
    (out / PARTIAL).unlink()
    return PhantomSummary(layout, out, counts, params, written)


def train_labels_sha256(train_labels) -> str:
    """sha256 over the training label vectors, one line of 0/1 digits each, in order."""
    import hashlib

    return hashlib.sha256("".join("".join(str(int(v)) for v in row) + "\n"
                                  for row in train_labels).encode()).hexdigest()


def check_train_labels(layout: str, train_labels, multi_label: bool, *, num_images, per_class):
    """(the vectors as tuples, their sha256); DataError naming what is wrong."""
    from medlt.data.labels import official_classes

    if layout not in ("nih-cxr-lt", "ct-rate"):
        raise DataError(f"train_labels: the {layout} phantom cannot be written from given label vectors "
                        f"(nih-cxr-lt and ct-rate can)")
    if num_images is not None or per_class is not None:
        raise DataError("train_labels excludes num_images and per_class (its length is the training set)")
    k = len(official_classes(layout))
    rows = [tuple(int(v) for v in row) for row in train_labels]
    if not rows:
        raise DataError("train_labels: no label vector given")
    for i, row in enumerate(rows):
        if len(row) != k or any(v not in (0, 1) for v in row):
            raise DataError(f"train_labels[{i}]: expected {k} values of 0/1 ({layout} classes), got {list(row)}")
        if layout == "nih-cxr-lt" and not multi_label and sum(row) != 1:
            raise DataError(f"train_labels[{i}]: a single-label NIH phantom needs one-hot vectors, got {list(row)}")
    return rows, train_labels_sha256(rows)


def _files(folder: Path) -> list[str]:
    """Every file under `folder`, as paths relative to it ("/"-separated)."""
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()]


def _read_marker(path: Path, key: str) -> list[str]:
    try:
        value = json.loads(path.read_text())[key]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, list):
        raise DataError(f"{path}: unreadable phantom marker; remove {path.parent} or choose another --out")
    return [str(v) for v in value]


def _claim_folder(out: Path) -> dict:
    """What writing a phantom into `out` may replace: {"foreign_files": files to keep}. DataError
    unless `out` is missing, empty, a phantom (MARKER) or a stopped phantom's partial output (PARTIAL,
    whose record of the folder before that run carries over)."""
    if not out.exists():
        return {"foreign_files": []}
    if not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if (out / PARTIAL).is_file():
        return {"foreign_files": _read_marker(out / PARTIAL, "foreign_files")}
    present = set(_files(out))
    if (out / MARKER).is_file():
        listed = set(_read_marker(out / MARKER, "files"))
        return {"foreign_files": sorted(present - listed - {MARKER})}
    if present or any(out.iterdir()):
        raise DataError(f"{out}: folder is not empty and holds no phantom; choose an empty or new "
                        f"--out folder (real data is never overwritten)")
    return {"foreign_files": []}
