"""classifier.synthetic_loss_weight: synthetic rows weigh s in the weighted-mean loss, real and copy
rows 1 (medlt.classify.losses, medlt.classify.train)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from mixdata import (  # noqa: E402
    CLASS_W,
    LOGITS,
    SAMPLE_W,
    TARGET,
    Recording,
    arm_manifests,
    ce,
    record_losses,
    with_classifier,
)

import medlt.classify.train as train_mod  # noqa: E402
from medlt.classify.data import classifier_data  # noqa: E402
from medlt.classify.losses import classification_loss  # noqa: E402
from medlt.errors import RecipeError  # noqa: E402
from medlt.recipe.load import recipe_from_resolved, recipe_to_dict  # noqa: E402


def test_single_label_weighted_mean_by_hand():
    z, y = torch.tensor(LOGITS), torch.tensor(TARGET)
    got = classification_loss(z, y, multi_label=False, class_weights=torch.tensor(CLASS_W),
                              sample_weights=torch.tensor(SAMPLE_W))["ce"]
    v = [s * CLASS_W[t] for s, t in zip(SAMPLE_W, TARGET, strict=True)]  # 0.5, 0.5, 1.0, 0.5
    want = sum(vi * ce(zi, t) for vi, zi, t in zip(v, LOGITS, TARGET, strict=True)) / sum(v)
    assert sum(v) == pytest.approx(2.5)
    assert float(got) == pytest.approx(want, rel=1e-6)
    # without class weights: Σ s_i ℓ_i / Σ s_i
    got = classification_loss(z, y, multi_label=False, sample_weights=torch.tensor(SAMPLE_W))["ce"]
    want = sum(s * ce(zi, t) for s, zi, t in zip(SAMPLE_W, LOGITS, TARGET, strict=True)) / sum(SAMPLE_W)
    assert float(got) == pytest.approx(want, rel=1e-6)
    # every s_i = 1: torch's weighted-mean cross-entropy, the loss without the option
    ones = classification_loss(z, y, multi_label=False, class_weights=torch.tensor(CLASS_W),
                               sample_weights=torch.ones(4))["ce"]
    assert float(ones) == pytest.approx(float(F.cross_entropy(z, y, weight=torch.tensor(CLASS_W))), rel=1e-6)


def test_multi_label_weighted_mean_by_hand():
    z = torch.tensor(LOGITS[:2])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    s = [1.0, 0.25]

    def bce(zz, yy):
        p = 1 / (1 + math.exp(-zz))
        return -(yy * math.log(p) + (1 - yy) * math.log(1 - p))

    m = [sum(CLASS_W[c] * bce(LOGITS[i][c], float(y[i, c])) for c in range(3)) / 3 for i in range(2)]
    want = (s[0] * m[0] + s[1] * m[1]) / (s[0] + s[1])
    got = classification_loss(z, y, multi_label=True, class_weights=torch.tensor(CLASS_W),
                              sample_weights=torch.tensor(s))["bce"]
    assert float(got) == pytest.approx(want, rel=1e-6)
    ones = classification_loss(z, y, multi_label=True, class_weights=torch.tensor(CLASS_W),
                               sample_weights=torch.ones(2))["bce"]
    assert float(ones) == pytest.approx(float(classification_loss(z, y, multi_label=True,
                                                                   class_weights=torch.tensor(CLASS_W))["bce"]))


@pytest.mark.parametrize("method", ["erm", "class-balanced"])
def test_training_weighs_synthetic_rows_only(tmp_path, monkeypatch, method):
    recipe, arms = arm_manifests(tmp_path)
    r = with_classifier(recipe, synthetic_loss_weight=0.25, method=method)
    data = classifier_data(r, train_manifest=arms["copies+synthetic"])
    ids: list = []
    data.train = Recording(data.train, ids)
    calls = record_losses(monkeypatch)
    summary = train_mod.fit_classifier(r, data, tmp_path / "run", show_progress=False)
    assert len(calls) == len(ids) > 0
    seen = {"real": set(), "copy": set(), "synthetic": set()}
    for batch, kw in zip(ids, calls, strict=True):
        for i, w in zip(batch, kw["sample_weights"].tolist(), strict=True):
            src = data.train_sources[i]
            seen[src].add(w)
    assert seen == {"real": {1.0}, "copy": {1.0}, "synthetic": {0.25}}
    assert (calls[0]["class_weights"] is not None) == (method == "class-balanced")
    assert summary["synthetic_loss_weight"] == 0.25 and summary["synthetic_items_weighted"] == 18
    assert "synthetic_loss_weight: 0.25" in (tmp_path / "run" / "recipe.yaml").read_text()


def test_default_weight_keeps_the_old_loss(tmp_path, monkeypatch):
    recipe, arms = arm_manifests(tmp_path)
    r = with_classifier(recipe)
    assert r.classifier.synthetic_loss_weight == 1.0
    data = classifier_data(r, train_manifest=arms["synthetic"])
    calls = record_losses(monkeypatch)
    summary = train_mod.fit_classifier(r, data, tmp_path / "run", show_progress=False)
    assert calls and all(kw["sample_weights"] is None and kw["logit_offsets"] is None for kw in calls)
    assert "synthetic_loss_weight" not in summary and summary["finish"] == "none"


@pytest.mark.parametrize("value", [0, -0.5])
def test_weight_must_be_positive(tmp_path, value):
    d = {"name": "x", "data": {"format": "manifest", "root": str(tmp_path)},
         "classifier": {"synthetic_loss_weight": value}}
    with pytest.raises(RecipeError, match=r"classifier.synthetic_loss_weight': must be > 0") as e:
        recipe_from_resolved(d)
    assert "\n" not in str(e.value)
    assert recipe_to_dict(recipe_from_resolved({**d, "classifier": {}}))["classifier"]["synthetic_loss_weight"] == 1.0
