"""A tiny multi-label CT set (NIfTI in HU) in medlt's manifest format, and a synthetic folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlt.data.io import write_nifti

CLASSES = ["Nodule", "Effusion"]
SPACING = (4.0, 4.0, 8.0)


def _volume(rng, labels, shift=0.0) -> np.ndarray:
    v = rng.normal(-700 + shift, 60, size=(16, 16, 8))
    if labels[0]:
        v[4:8, 4:8, 2:6] = 40.0  # nodule
    if labels[1]:
        v[:, 11:15, :3] = 10.0  # fluid at the bottom
    return v.astype(np.float32)


def _rows(root, split, label_sets, rng, prefix, source="real", shift=0.0):
    rows = []
    for i, lab in enumerate(label_sets):
        name = f"{prefix}_{split}_{i}.nii.gz"
        write_nifti(root / "vol" / name, _volume(rng, lab, shift), SPACING, descrip=f"{source} test volume")
        row = {"id": name, "image": f"vol/{name}", "patient_id": f"{prefix}{split}{i}", "split": split,
               **{c: int(v) for c, v in zip(CLASSES, lab, strict=True)}, "source": source,
               "spacing_x": SPACING[0], "spacing_y": SPACING[1], "spacing_z": SPACING[2],
               "rescale_slope": 1.0, "rescale_intercept": 0.0}
        rows.append(row)
    return rows


def make_ct(root: Path, syn: Path) -> Path:
    rng = np.random.default_rng(0)
    train = [(1, 0)] * 8 + [(0, 1)] * 4 + [(1, 1)] * 2 + [(0, 0)] * 4
    rows = _rows(root, "train", train, rng, "p") + _rows(root, "valid", [(1, 0), (0, 1), (1, 1), (0, 0)] * 2, rng, "p")
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    srows = _rows(syn, "train", [(1, 0)] * 3 + [(0, 1)] * 3, np.random.default_rng(1), "syn", "synthetic", 30.0)
    pd.DataFrame(srows).to_csv(syn / "manifest.csv", index=False)
    recipe = root / "recipe.yaml"
    recipe.write_text(f"""name: fake-ct
seed: 0
data:
  format: manifest
  root: {root}
  labels: {root / 'manifest.csv'}
  classes: {CLASSES}
  multi_label: true
  image_size: [16, 16, 8]
  ct: {{spacing_mm: [4.0, 4.0, 8.0], crop_size: null, mode: 3d}}
  splits: {{train: train, val: valid, test: valid, test_longtail: null}}
  group_thresholds: [5, 9]
classifier: {{architecture: resnet18, widen_factor: 0.125, epochs: 1, per_rank_batch_size: 6, lr: 0.003, device: cpu}}
evaluate: {{roles: [test, test_longtail], kid_subset_size: 5, kid_num_subsets: 3, ms_ssim_max_pairs: 3,
  grid_images_per_class: 2, batch_size: 6, ms_ssim_weights: [0.5, 0.5]}}
""")
    return recipe
