"""classifier.method logit-adjusted (Menon et al. 2021): training loss = cross-entropy of
f(x) + τ·log π with π from the real training rows' counts; predictions use f(x) alone."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from mixdata import LOGITS, TARGET, arm_manifests, ce, record_losses, with_classifier  # noqa: E402

import medlt.classify.train as train_mod  # noqa: E402
from medlt.classify.data import classifier_data  # noqa: E402
from medlt.classify.load import load_classifier  # noqa: E402
from medlt.classify.losses import classification_loss  # noqa: E402
from medlt.errors import DataError, RecipeError  # noqa: E402

REAL_COUNTS = [40, 16, 6]  # fakedata.TRAIN_COUNTS


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_loss_is_cross_entropy_of_adjusted_logits_by_hand(tau):
    from medlt.classify.losses import logit_adjustment

    offs = logit_adjustment(REAL_COUNTS, tau)
    prior = [n / sum(REAL_COUNTS) for n in REAL_COUNTS]
    assert offs.tolist() == pytest.approx([tau * math.log(p) for p in prior], rel=1e-6)
    got = classification_loss(torch.tensor(LOGITS), torch.tensor(TARGET), multi_label=False, logit_offsets=offs)["ce"]
    adjusted = [[z + tau * math.log(p) for z, p in zip(row, prior, strict=True)] for row in LOGITS]
    want = sum(ce(z, y) for z, y in zip(adjusted, TARGET, strict=True)) / len(TARGET)
    assert float(got) == pytest.approx(want, rel=1e-6)
    # with synthetic rows down-weighted too: the weighted mean of the adjusted losses
    s = [1.0, 0.5, 1.0, 0.5]
    got = classification_loss(torch.tensor(LOGITS), torch.tensor(TARGET), multi_label=False, logit_offsets=offs,
                              sample_weights=torch.tensor(s))["ce"]
    assert float(got) == pytest.approx(sum(si * ce(z, y) for si, z, y in zip(s, adjusted, TARGET, strict=True))
                                       / sum(s), rel=1e-6)


def test_prior_counts_real_rows_only_and_predictions_use_raw_logits(tmp_path, monkeypatch):
    recipe, arms = arm_manifests(tmp_path)
    r = with_classifier(recipe, method="logit-adjusted")
    data = classifier_data(r, train_manifest=arms["copies+synthetic"])
    # the training set holds copies and synthetic rows; the prior counts none of them
    assert data.train_counts == [40 + 0 + 2, 16 + 4 + 6, 6 + 10 + 10]
    assert data.real_train_counts == REAL_COUNTS
    calls = record_losses(monkeypatch)
    summary = train_mod.fit_classifier(r, data, tmp_path / "run", show_progress=False)
    want = [math.log(n / sum(REAL_COUNTS)) for n in REAL_COUNTS]
    assert calls and all(kw["logit_offsets"].tolist() == pytest.approx(want, rel=1e-5) for kw in calls)
    assert all(kw["class_weights"] is None for kw in calls)
    assert summary["logit_adjustment"] == {"tau": 1.0, "prior_counts": REAL_COUNTS, "prior_from": "real rows"}
    assert summary["method"] == "logit-adjusted"
    # predictions: softmax of the network's own logits, no offset
    clf = load_classifier(tmp_path / "run")
    batch = next(iter(data.val))
    x = batch["image"]
    raw = clf.logits(x)
    probs = clf.predict_proba(x)
    assert torch.allclose(probs, torch.softmax(raw, 1), atol=1e-6)
    assert not torch.allclose(probs, torch.softmax(raw + torch.tensor(want), 1), atol=1e-3)
    t, p, _ = train_mod.predict(clf.net, data.val, torch.device("cpu"), multi_label=False)
    assert torch.allclose(p[: len(x)], probs, atol=1e-5)


def test_multi_label_is_refused_in_one_line(tiny, tmp_path):
    make_data, tiny_recipe = tiny
    data = make_data([12, 4], multi_label=True)
    r = tiny_recipe(tmp_path, method="logit-adjusted")
    with pytest.raises(RecipeError, match="'classifier.method': 'logit-adjusted' is defined for single-label") as e:
        train_mod.fit_classifier(r, data, tmp_path / "run", show_progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()


def test_class_without_real_rows_is_refused(tiny, tmp_path):
    make_data, tiny_recipe = tiny
    data = make_data([12, 4, 3])
    data.real_train_counts = [12, 4, 0]  # class2 has synthetic rows only
    with pytest.raises(DataError, match="logit-adjusted.*class 'class2' has no real training row"):
        train_mod.fit_classifier(tiny_recipe(tmp_path, method="logit-adjusted"), data, tmp_path / "run",
                                 show_progress=False)
