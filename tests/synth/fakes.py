"""Test doubles for synth: a generator with the interface-4 shape, a tiny real data set on disk."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from medlt.data.labels import LabelSpace
from medlt.recipe.load import recipe_from_dict


class FakeGenerator:
    """generate(): each image a pure function of its own seed and label (like the real one)."""

    def __init__(self, label_space: LabelSpace, image_shape=(1, 8, 8), sha: str = "ab" * 32,
                 delay_s: float = 0.0):
        self.label_space = label_space
        self.image_shape = tuple(image_shape)
        self.checkpoint_sha256 = sha
        self.train_class_counts = [0] * label_space.num_classes
        self.delay_s = delay_s
        self.calls: list[dict] = []

    def generate(self, labels, seeds, *, guidance_scale, num_inference_steps, sampler="ddim"):
        labels = torch.as_tensor(labels)
        self.calls.append({"labels": labels.clone(), "seeds": list(seeds), "guidance_scale": guidance_scale,
                           "steps": num_inference_steps, "sampler": sampler})
        out = []
        for lab, s in zip(labels, seeds, strict=True):
            g = torch.Generator().manual_seed(int(s))
            x = torch.rand(self.image_shape, generator=g) * 2 - 1
            shift = float(lab.float().sum() if lab.dim() else lab.float()) * 0.01
            out.append((x + shift).clamp(-1, 1))
        if self.delay_s:
            time.sleep(self.delay_s)
        return torch.stack(out) if out else torch.empty(0, *self.image_shape)


def dies_on_call(generator_class, call: int):
    """A subclass of `generator_class` whose generate() raises KeyboardInterrupt on its `call`-th call
    (counted over all its instances): a run interrupted part way."""

    class Dies(generator_class):
        n = 0

        def generate(self, *a, **k):
            Dies.n += 1
            if Dies.n == call:
                raise KeyboardInterrupt
            return super().generate(*a, **k)

    return Dies


def make_recipe(root: Path, fmt: str = "nih-cxr-lt", **extra):
    data = {"format": fmt, "root": str(root), "labels": str(root), "group_thresholds": [3, 6]}
    if fmt == "ct-rate":
        data.update({"multi_label": True, "image_size": [8, 8, 4],
                     "ct": {"spacing_mm": [2.0, 2.0, 3.0], "crop_size": None},
                     "splits": {"train": "train", "val": "valid", "test": "valid", "test_longtail": None}})
    if fmt == "mimic-cxr-lt":
        data["extension"] = "dcm"
    d = {"name": f"test-{fmt}", "seed": 7, "data": data}
    for k, v in extra.items():
        d[k] = v
    return recipe_from_dict(d, base_dir=root)


def make_table(root: Path, label_space: LabelSpace, train_labels: np.ndarray, *, fmt: str = "nih-cxr-lt",
               val_per_class: int = 1, eval_splits: tuple[str, ...] | None = None,
               write_images: bool = True):
    """A canonical-table stand-in (.frame, .label_space) whose images exist on disk."""
    from medlt.data import io

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    rng = np.random.default_rng(0)
    k = label_space.num_classes

    def add(split: str, vec: np.ndarray) -> None:
        i = len(rows)
        rid = f"real_{i:05d}"
        if fmt == "ct-rate":
            path = root / "dataset" / split / f"{split}_{i}_a_1.nii.gz"
            if write_images:
                io.write_nifti(path, rng.integers(-1000, 1000, (8, 8, 4)).astype(np.int16), (2.0, 2.0, 3.0),
                               descrip="phantom")
        elif fmt == "mimic-cxr-lt":
            path = root / "files" / "p10" / f"p1000{i:04d}" / f"s5000{i:04d}" / f"{rid}.dcm"
            if write_images:
                io.write_dicom(path, rng.random((8, 8)), synthetic=False, meta={
                    "PatientID": f"PLANTEDPID{i:04d}", "PatientName": f"DOE^PLANTED{i:04d}",
                    "AccessionNumber": f"PLANTEDACC{i:04d}", "StudyID": f"PLANTEDSTUDY{i}",
                    "InstitutionName": "PLANTED GENERAL HOSPITAL", "uid_seed": f"planted-{i}"})
        else:
            path = root / "images" / f"{rid}.png"
            if write_images:
                io.write_png(path, rng.random((8, 8)))
        row = {"id": rid, "image": str(path), "patient_id": f"pat{i}", "split": split, "source": "real"}
        row.update({n: int(v) for n, v in zip(label_space.names, vec, strict=True)})
        if fmt == "ct-rate":
            row.update({"spacing_x": 2.0, "spacing_y": 2.0, "spacing_z": 3.0, "rescale_slope": 1.0,
                        "rescale_intercept": 0.0})
        rows.append(row)

    for vec in np.asarray(train_labels):
        add("train", vec)
    if eval_splits is None:
        eval_splits = ("valid",) if fmt == "ct-rate" else ("balanced-val", "balanced-test", "test")
    for split in eval_splits:
        for c in range(k):
            for _ in range(val_per_class):
                v = np.zeros(k, np.int64)
                v[c] = 1
                add(split, v)
    frame = pd.DataFrame(rows)
    return SimpleNamespace(frame=frame, label_space=label_space)


def one_hot_rows(counts) -> np.ndarray:
    k = len(counts)
    rows = [np.eye(k, dtype=np.int64)[c] for c, n in enumerate(counts) for _ in range(n)]
    return np.stack(rows) if rows else np.zeros((0, k), np.int64)


TINY_MODEL = {"channels": [8, 8], "attention_levels": [False, False], "num_res_blocks": 1,
              "num_head_channels": 8, "norm_num_groups": 4}


def write_tiny_checkpoint(path: Path, recipe, label_space: LabelSpace, train_counts) -> Path:
    """A randomly initialised diffusion checkpoint in the interface-4 layout (EMA weights, recipe,
    label space, training counts): real sampling code, no training."""
    from medlt.diffusion.unet import build_model
    from medlt.recipe import recipe_to_dict
    from medlt.utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model(recipe.model, label_space)
    sd = model.state_dict()
    return save_checkpoint(path, {"model": sd, "ema": sd, "step": 0, "recipe": recipe_to_dict(recipe),
                                  "label_space": label_space.to_dict(),
                                  "train_class_counts": [int(c) for c in train_counts]})


def write_manifest_dataset(root: Path, names, train_counts, *, size=8) -> Path:
    """Real PNGs + a medlt manifest CSV + a recipe YAML (format manifest, tiny model); returns the
    recipe path."""
    import yaml

    from medlt.data import io

    rng = np.random.default_rng(0)
    rows = []
    k = len(names)
    for split, counts in (("train", train_counts), ("balanced-val", [1] * k), ("balanced-test", [1] * k),
                          ("test", [1] * k)):
        for c, n in enumerate(counts):
            for _ in range(n):
                i = len(rows)
                rel = f"images/real_{i:04d}.png"
                io.write_png(root / rel, rng.random((size, size)))
                rows.append({"image": rel, "patient_id": f"pat{i}", "split": split,
                             **{nm: int(j == c) for j, nm in enumerate(names)}})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    recipe = {"name": "tiny", "seed": 3,
              "data": {"format": "manifest", "root": ".", "labels": "manifest.csv", "classes": list(names),
                       "image_size": [size, size], "group_thresholds": [2, 5]},
              "model": TINY_MODEL,
              "sampling": {"num_inference_steps": 2, "guidance_scale": 1.0},
              "synth": {"batch_size": 4}}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root / "recipe.yaml"
