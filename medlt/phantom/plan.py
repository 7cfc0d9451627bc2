"""Which images a phantom has: labels per split, patients, several images per patient.

Single-label (NIH-CXR-LT / MIMIC-CXR-LT "single-label" CSVs):
- train: n_c = n_max * r ** (c / (C - 1)) images of class c (counts.py), n_max chosen so the
  counts sum to about `num_train`;
- test: the same long tail, n_c * test_fraction (at least 1 each);
- balanced-val / balanced-test: a fixed number of images per class.
Multi-label (NIH "miccai2023" CSVs, splits train/val/test): every image has one primary class
drawn as above (train: the formula; val/test: the scaled tail, at least 2 each), plus, for images
that are not "No Finding", one extra finding with probability 0.35 and a second with 0.1.

Given label vectors (`given`, used by the bench's ideal arm): a split whose vectors are given holds
exactly those images in that order (no extra findings drawn), grouped into patients as above.

Patients: each split's images are shuffled and grouped into patients of 1-4 images (mostly 1-2);
patient numbers are unique across splits, so splits are patient-disjoint by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medlt.phantom.counts import long_tail_counts, n_max_for_total


@dataclass(frozen=True)
class PlannedImage:
    split: str
    patient: int          # 1-based, unique across splits
    index: int            # image number within the patient (0-based)
    labels: tuple[int, ...]  # 0/1 per class
    primary: int          # the class whose count the formula controls


def train_counts(num_train: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    return long_tail_counts(n_max_for_total(num_train, num_classes, imbalance_ratio), num_classes,
                            imbalance_ratio)


def split_primaries(num_train: int, num_classes: int, imbalance_ratio: float, *, multi_label: bool,
                    per_class_val: int, per_class_test: int, test_fraction: float) -> dict[str, list[int]]:
    """split -> number of images per primary class."""
    train = train_counts(num_train, num_classes, imbalance_ratio)
    if multi_label:
        scaled = [max(2, int(round(n * test_fraction))) for n in train]
        return {"train": train, "val": scaled, "test": list(scaled)}
    return {"train": train, "balanced-val": [per_class_val] * num_classes,
            "test": [max(1, int(round(n * test_fraction))) for n in train],
            "balanced-test": [per_class_test] * num_classes}


def _patient_sizes(n: int, rng: np.random.Generator) -> list[int]:
    """Images per patient: 1 (60 %), 2 (25 %), 3 (10 %) or 4 (5 %), until `n` are used."""
    sizes = []
    while n > 0:
        k = min(n, int(rng.choice([1, 2, 3, 4], p=[0.6, 0.25, 0.1, 0.05])))
        sizes.append(k)
        n -= k
    return sizes


def _given_split(split: str, vectors, first_patient: int, rng: np.random.Generator) -> list[PlannedImage]:
    """Images with exactly the label vectors `vectors`, in order, grouped into patients."""
    out: list[PlannedImage] = []
    pos, patient = 0, first_patient
    for size in _patient_sizes(len(vectors), rng):
        for k in range(size):
            vec = tuple(int(x) for x in vectors[pos])
            out.append(PlannedImage(split, patient, k, vec, vec.index(1) if 1 in vec else -1))
            pos += 1
        patient += 1
    return out


def plan_images(num_classes: int, per_split: dict[str, list[int]], *, multi_label: bool,
                no_finding: int | None, rng: np.random.Generator,
                given: dict[str, list] | None = None) -> list[PlannedImage]:
    """Labels and patients for every image of every split, in a fixed order; a split in `given`
    holds exactly the label vectors given for it, in that order."""
    out: list[PlannedImage] = []
    next_patient = 1
    for split, counts in per_split.items():
        if given is not None and split in given:
            items = _given_split(split, given[split], next_patient, rng)
            out += items
            next_patient = max((i.patient for i in items), default=next_patient - 1) + 1
            continue
        primaries = np.repeat(np.arange(num_classes), counts)
        rng.shuffle(primaries)
        pos = 0
        for size in _patient_sizes(len(primaries), rng):
            for k in range(size):
                c = int(primaries[pos])
                pos += 1
                vec = np.zeros(num_classes, dtype=int)
                vec[c] = 1
                if multi_label and c != no_finding:
                    others = [j for j in range(num_classes) if j != c and j != no_finding]
                    extra = int(rng.random() < 0.35) + int(rng.random() < 0.1)
                    for j in rng.choice(others, size=min(extra, len(others)), replace=False):
                        vec[int(j)] = 1
                out.append(PlannedImage(split, next_patient, k, tuple(int(x) for x in vec), c))
            next_patient += 1
    return out
