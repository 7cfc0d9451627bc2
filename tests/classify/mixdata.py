"""A tiny long-tailed PNG set (fakedata) with training manifests of every bench arm, written at test
time: real only, real + copies, real + synthetic, real + copies + synthetic."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from fakedata import make_merged, make_real, make_synthetic  # noqa: E402

from medlt.recipe import Recipe, load_recipe  # noqa: E402
from medlt.recipe.load import recipe_from_resolved, recipe_to_dict  # noqa: E402

#: copy rows added per class (Big, Mid, Rare) and synthetic rows per class
COPIES = (0, 4, 10)
SYNTHETIC = (2, 6, 10)


def with_classifier(recipe: Recipe, **keys) -> Recipe:
    d = recipe_to_dict(recipe)
    d["classifier"].update({"epochs": 1, "augment_rotation_deg": 0.0, **keys})
    return recipe_from_resolved(d)


def arm_manifests(tmp: Path) -> tuple[Recipe, dict[str, Path]]:
    """(the real recipe, {arm: training manifest}) for the arms real, copies, synthetic (real +
    synthetic) and copies+synthetic; every manifest's paths are relative to `tmp` (<stem>.root.txt)."""
    common = tmp
    real = tmp / "data"
    real.mkdir()
    recipe = load_recipe(make_real(real))
    syn = tmp / "syn"
    (syn / "images").mkdir(parents=True)
    make_synthetic(real, syn, counts=SYNTHETIC, plant_copy=False)
    merged = pd.read_csv(make_merged(real, syn, common), dtype=str)
    is_real = merged["source"] == "real"
    train = merged[is_real & (merged["split"] == "train")]
    names = ["Big", "Mid", "Rare"]
    copies = []
    for c, n in zip(names, COPIES, strict=True):
        rows = train[train[c] == "1"]
        for k in range(n):
            row = rows.iloc[k % len(rows)].copy()
            row["id"] = f"copy{c}{k}__{row['id']}"
            row["source"] = "copy"
            copies.append(row)
    copies = pd.DataFrame(copies)
    out = {}
    for name, frame in {"real": merged[is_real], "copies": pd.concat([merged[is_real], copies]),
                        "synthetic": merged,
                        "copies+synthetic": pd.concat([merged[is_real], copies, merged[~is_real]])}.items():
        path = tmp / f"{name.replace('+', '_')}.csv"
        frame.to_csv(path, index=False)
        (tmp / f"{path.stem}.root.txt").write_text(str(common))
        out[name] = path
    return recipe, out


#: a hand-computed example: logits of 4 samples over 3 classes, targets, class weights, sample weights
LOGITS = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, -1.0, 2.0]]
TARGET = [0, 2, 1, 2]
CLASS_W = [0.5, 1.0, 2.0]
SAMPLE_W = [1.0, 0.25, 1.0, 0.25]  # rows 1 and 3 synthetic, s = 0.25


def ce(z, y):
    """Softmax cross-entropy of logits z (a list) for class y, by hand."""
    return math.log(sum(math.exp(v) for v in z)) - z[y]


class Recording:
    """A loader that records the ids of every batch it yields."""

    def __init__(self, loader, log):
        self.loader, self.log = loader, log
        self.sampler = getattr(loader, "sampler", None)

    def __iter__(self):
        for b in self.loader:
            self.log.append([str(i) for i in b["id"]])
            yield b


def record_losses(monkeypatch) -> list:
    """The keyword arguments of every classification_loss call fit_classifier makes."""
    import medlt.classify.train as train_mod

    calls = []
    real_loss = train_mod.classification_loss

    def spy(logits, target, **kw):
        calls.append(kw)
        return real_loss(logits, target, **kw)

    monkeypatch.setattr(train_mod, "classification_loss", spy)
    return calls
