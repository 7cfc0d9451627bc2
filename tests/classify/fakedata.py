"""A small long-tailed PNG dataset in medlt's `manifest` format, written at test time, plus a
synthetic folder in `medlt synth`'s layout (manifest.csv, source=synthetic) and a merged.csv."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.io import write_png

CLASSES = ["Big", "Mid", "Rare"]
TRAIN_COUNTS = [40, 16, 6]


def _image(rng, c: int, size: int = 32, shift: float = 0.0) -> np.ndarray:
    img = rng.random((size, size)) * 0.3 + 0.1 + shift
    r0 = 4 + 8 * c
    img[r0:r0 + 6, 6:26] = 0.9  # class-specific bright band
    return np.clip(img, 0, 1).astype(np.float32)


def _rows(root: Path, split: str, counts, rng, prefix: str, shift=0.0, source="real"):
    rows = []
    for c, n in enumerate(counts):
        for i in range(n):
            name = f"{prefix}_{split}_{c}_{i}.png"
            write_png(root / "images" / name, _image(rng, c, shift=shift))
            row = {"id": name, "image": f"images/{name}", "patient_id": f"{prefix}{split}{c}x{i}", "split": split}
            row.update({k: int(k == CLASSES[c]) for k in CLASSES})
            row["source"] = source
            rows.append(row)
    return rows


def make_real(root: Path) -> Path:
    """Writes root/manifest.csv + images; returns the recipe path."""
    rng = np.random.default_rng(0)
    rows = (_rows(root, "train", TRAIN_COUNTS, rng, "p") + _rows(root, "balanced-val", [4, 4, 4], rng, "p")
            + _rows(root, "balanced-test", [6, 6, 6], rng, "p") + _rows(root, "test", [20, 8, 3], rng, "p"))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    recipe = root / "recipe.yaml"
    recipe.write_text(f"""name: fake-lt
seed: 0
data:
  format: manifest
  root: {root}
  labels: {root / 'manifest.csv'}
  classes: {CLASSES}
  image_size: [32, 32]
  group_thresholds: [10, 20]
classifier:
  architecture: resnet18
  widen_factor: 0.125
  epochs: 3
  per_rank_batch_size: 16
  lr: 0.003
  device: cpu
evaluate:
  kid_subset_size: 10
  kid_num_subsets: 5
  ms_ssim_max_pairs: 10
  grid_images_per_class: 2
  memorization_pairs_saved: 3
""")
    return recipe


def make_synthetic(real_root: Path, out: Path, counts=(10, 10, 10), plant_copy: bool = True) -> str | None:
    """A synth-like folder: out/manifest.csv (relative to out) + images; optionally a byte copy
    of a real training image of class Rare (returns its synthetic id)."""
    rng = np.random.default_rng(7)
    rows = _rows(out, "train", counts, rng, "syn", shift=0.05, source="synthetic")
    planted = None
    if plant_copy:
        src = real_root / "images" / "p_train_2_0.png"
        shutil.copy(src, out / "images" / "syn_copy.png")
        planted = "syn_copy.png"
        row = {"id": planted, "image": "images/syn_copy.png", "patient_id": "synthetic-copy", "split": "train",
               **{k: int(k == "Rare") for k in CLASSES}, "source": "synthetic"}
        rows.append(row)
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)
    return planted


def make_merged(real_root: Path, syn_dir: Path, common: Path) -> Path:
    real = pd.read_csv(real_root / "manifest.csv", dtype=str)
    syn = pd.read_csv(syn_dir / "manifest.csv", dtype=str)
    real["image"] = [str((real_root / p).relative_to(common)) for p in real["image"]]
    syn["image"] = [str((syn_dir / p).relative_to(common)) for p in syn["image"]]
    merged = pd.concat([real, syn], ignore_index=True)
    path = syn_dir / "merged.csv"
    merged.to_csv(path, index=False)
    (syn_dir / "merged.root.txt").write_text(str(common))
    return path
