"""Tiny in-memory long-tailed datasets in the loader dict format (no files needed)."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from medlt.classify.train import ClassifierData
from medlt.data.labels import LabelSpace
from medlt.recipe import Recipe


class Blobs(Dataset):
    """Class c = a bright square at a class-specific position (learnable in a few steps)."""

    def __init__(self, counts, shape=(16, 16), seed=0, multi_label=False):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        k = len(counts)
        for c, n in enumerate(counts):
            for i in range(n):
                img = torch.rand((1, *shape), generator=g) * 0.4 - 1.0
                pos = (c * 3) % (shape[0] - 4)
                if len(shape) == 2:
                    img[0, pos:pos + 4, 2:8] = 1.0
                else:
                    img[0, pos:pos + 4, 2:8, :] = 1.0
                if multi_label:
                    lab = torch.zeros(k)
                    lab[c] = 1.0
                else:
                    lab = torch.tensor(c, dtype=torch.int64)
                self.items.append({"image": img, "label": lab, "id": f"c{c}_{i}_s{seed}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def make_data(counts, shape=(16, 16), multi_label=False, val_per_class=4):
    ls = LabelSpace(tuple(f"class{i}" for i in range(len(counts))), multi_label)
    train = Blobs(counts, shape, seed=0, multi_label=multi_label)
    val = Blobs([val_per_class] * len(counts), shape, seed=1, multi_label=multi_label)
    labels = [int(it["label"].argmax()) if multi_label else int(it["label"]) for it in train.items]
    w = [1.0 / counts[c] for c in labels]

    def balanced():
        g = torch.Generator().manual_seed(0)
        return DataLoader(train, batch_size=8, sampler=WeightedRandomSampler(w, len(w), generator=g))

    return ClassifierData(train=DataLoader(train, batch_size=8, shuffle=True,
                                           generator=torch.Generator().manual_seed(0)),
                          val=DataLoader(val, batch_size=16), label_space=ls, train_counts=list(counts),
                          spatial_dims=len(shape), balanced_train=balanced)


def tiny_recipe(tmp_path, **classifier) -> Recipe:
    cfg = {"architecture": "resnet18", "widen_factor": 0.125, "epochs": 2, "per_rank_batch_size": 8,
           "lr": 3e-3, "device": "cpu", **classifier}
    return Recipe.model_validate({"name": "tiny", "data": {"format": "manifest", "root": str(tmp_path)},
                                  "classifier": cfg})


@pytest.fixture
def tiny():
    return make_data, tiny_recipe
