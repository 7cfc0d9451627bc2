"""Label rules in one place: class order per dataset, aliases, single- vs multi-label, and the
head / medium / tail grouping (docs/datasets.md).

Everything that needs a class list, a class index or a group asks this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from medlt.errors import DataError
from medlt.registry import did_you_mean

DATA_MANIFESTS = Path(__file__).resolve().parents[2] / "data_manifests"

#: recipe `data.format` -> class list file in data_manifests/ ("manifest" carries its own classes)
CLASS_LIST_FILES = {
    "nih-cxr-lt": "nih_cxr_lt_classes.txt",
    "mimic-cxr-lt": "mimic_cxr_lt_classes.txt",
    "ct-rate": "ct_rate_classes.txt",
}
#: whether each official dataset is multi-label by default
DEFAULT_MULTI_LABEL = {"nih-cxr-lt": False, "mimic-cxr-lt": False, "ct-rate": True}

#: head > 1000, medium 100-1000, tail < 100 training images (LongTailCXR convention)
DEFAULT_GROUP_THRESHOLDS = (100, 1000)
GROUPS = ("head", "medium", "tail")


def normalize_class_name(name: str) -> str:
    """Key used to match class names across sources: case, spaces, '_' and '-' do not matter."""
    return re.sub(r"[\s_\-]+", " ", str(name)).strip().lower()


@cache
def official_classes(fmt: str) -> tuple[str, ...]:
    """The official class order of a dataset format (from data_manifests/)."""
    if fmt not in CLASS_LIST_FILES:
        raise DataError(f"no official class list for data format '{fmt}'; "
                        f"{did_you_mean(fmt, tuple(CLASS_LIST_FILES))}")
    path = DATA_MANIFESTS / CLASS_LIST_FILES[fmt]
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    return names


def group_of_count(count: int, thresholds: Sequence[int] = DEFAULT_GROUP_THRESHOLDS) -> str:
    """'head' (> high), 'medium' (low..high inclusive), 'tail' (< low)."""
    low, high = thresholds
    if count > high:
        return "head"
    if count >= low:
        return "medium"
    return "tail"


@dataclass(frozen=True)
class LabelSpace:
    """Ordered classes and whether a sample may carry several of them.

    Single-label targets are class indices in [0, K); multi-label targets are multi-hot (K,)
    vectors. In diffusion conditioning index K is the null ("unconditional") label.
    """

    names: tuple[str, ...]
    multi_label: bool

    def __post_init__(self):
        keys = [normalize_class_name(n) for n in self.names]
        if len(set(keys)) != len(keys):
            raise DataError(f"duplicate class names in label space: {list(self.names)}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def null_index(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of a class, matching case/space/underscore-insensitively."""
        key = normalize_class_name(name)
        for i, n in enumerate(self.names):
            if normalize_class_name(n) == key:
                return i
        raise DataError(f"unknown class '{name}'; {did_you_mean(name, self.names)}")

    def match_columns(self, columns: Iterable[str], *, source: str) -> dict[str, str]:
        """Map each class name to the column that holds it; DataError naming `source` if any is
        missing. Extra columns are ignored (the caller decides whether they are allowed)."""
        by_key = {normalize_class_name(c): c for c in columns}
        missing = [n for n in self.names if normalize_class_name(n) not in by_key]
        if missing:
            raise DataError(f"{source}: missing class column(s) {missing}")
        return {n: by_key[normalize_class_name(n)] for n in self.names}

    def encode(self, positives: Iterable[str]) -> np.ndarray:
        """Multi-hot (K,) int vector from class names."""
        vec = np.zeros(self.num_classes, dtype=np.int64)
        for p in positives:
            vec[self.index(p)] = 1
        return vec

    def decode(self, vec: Sequence[int]) -> list[str]:
        return [n for n, v in zip(self.names, vec, strict=True) if int(v)]

    def groups(self, train_counts: Sequence[int],
               thresholds: Sequence[int] = DEFAULT_GROUP_THRESHOLDS) -> list[str]:
        """head/medium/tail for each class from the training split's per-class counts."""
        if len(train_counts) != self.num_classes:
            raise ValueError(f"{len(train_counts)} counts for {self.num_classes} classes")
        return [group_of_count(int(c), thresholds) for c in train_counts]

    def to_dict(self) -> dict:
        return {"names": list(self.names), "multi_label": self.multi_label}

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpace:
        return cls(names=tuple(d["names"]), multi_label=bool(d["multi_label"]))

    @classmethod
    def official(cls, fmt: str, multi_label: bool | None = None) -> LabelSpace:
        ml = DEFAULT_MULTI_LABEL[fmt] if multi_label is None else multi_label
        return cls(names=official_classes(fmt), multi_label=ml)


@cache
def official_train_counts(fmt: str) -> dict[str, int]:
    """Published training-split counts (NIH-CXR-LT, MIMIC-CXR-LT), for docs and planning tests."""
    data = json.loads((DATA_MANIFESTS / "train_counts.json").read_text())
    return dict(data[fmt])
