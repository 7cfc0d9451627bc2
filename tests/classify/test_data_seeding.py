"""A classifier run's data order and augmentation depend on its own seed only, not on what ran
before it in the process (a bench cell redone after a kill must equal the uninterrupted one)."""

import torch

from medlt.classify.data import classifier_data
from medlt.recipe import load_recipe
from tests.classify.fakedata import make_real


def _first_batches(recipe, n=2):
    data = classifier_data(recipe)
    out = []
    for i, batch in enumerate(data.train):
        out.append((batch["image"].clone(), list(batch["id"])))
        if i + 1 >= n:
            break
    return out


def test_augmentation_and_order_ignore_the_global_rng(tmp_path):
    recipe = load_recipe(make_real(tmp_path), ["classifier.augment_rotation_deg=15", "classifier.augment_flip=true"])
    torch.manual_seed(123)
    a = _first_batches(recipe)
    torch.manual_seed(987)  # another history of the process: a different global RNG state
    torch.rand(1000)
    b = _first_batches(recipe)
    for (xa, ia), (xb, ib) in zip(a, b, strict=True):
        assert ia == ib
        assert torch.equal(xa, xb)
    # the augmentation is random (so the check above can fail): another recipe seed changes it
    other = _first_batches(load_recipe(make_real(tmp_path / "o"), ["seed=5", "classifier.augment_rotation_deg=15"]))
    assert not all(torch.equal(x, y) for (x, _), (y, _) in zip(a, other, strict=True))
