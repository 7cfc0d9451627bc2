"""Multi-label class fidelity is an AUROC, so the judge's ceiling (and the classes it is said not to
recognise) is its AUROC on the real test images, not its recall at classifier.threshold."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medlt.data.labels import LabelSpace
from medlt.metrics.fidelity import class_fidelity_multi_label
from tests.classify.conftest import tiny_recipe

NAMES = ("A", "B", "C")
GROUPS = ["head", "medium", "tail"]


def _real_test_set():
    """Judge scores on real test images: A and B above 0.5 where positive; C ranked perfectly (its
    positives score 0.3, its negatives 0.1) but never reaching the 0.5 threshold; recall of C = 0."""
    t = np.eye(3)[np.repeat(np.arange(3), 6)]
    s = np.where(t > 0, 0.9, 0.2)
    s[:, 2] = np.where(t[:, 2] > 0, 0.3, 0.1)
    return torch.tensor(t, dtype=torch.float32), torch.tensor(s, dtype=torch.float32)


def test_judge_that_ranks_a_class_perfectly_below_the_threshold_is_not_excluded(monkeypatch, tmp_path):
    import medlt.classify.reference as reference
    import medlt.classify.train as train
    import medlt.data.loaders as loaders
    from medlt.classify.synthetic_classes import synthetic_class_checks

    ls = LabelSpace(NAMES, True)
    rng = np.random.default_rng(0)
    intended = np.eye(3, dtype=int)[np.repeat(np.arange(3), 10)]
    syn_scores = np.clip(intended * 0.3 + rng.random(intended.shape) * 0.4, 0, 1)
    t, s = _real_test_set()
    monkeypatch.setattr(reference, "load_reference", lambda *a, **k: SimpleNamespace(label_space=ls, net=None,
                                                                                        device="cpu"))
    monkeypatch.setattr(reference, "reference_record", lambda clf, source: {"name": "judge", "source": source,
                                                                                  "trained_on": "real"})
    monkeypatch.setattr(reference, "class_fidelity_of_synthetic",
                        lambda *a, **k: class_fidelity_multi_label(intended, syn_scores, NAMES, GROUPS))
    monkeypatch.setattr(loaders, "build_dataloader", lambda *a, **k: None)
    monkeypatch.setattr(train, "predict", lambda *a, **k: (t, s, [f"i{i}" for i in range(len(t))]))
    recipe = tiny_recipe(tmp_path)
    assert recipe.classifier.threshold == 0.5
    out = synthetic_class_checks(recipe, {"classifier": {"train_source": "real"}}, SimpleNamespace(label_space=ls),
                                 GROUPS, tmp_path / "syn", tmp_path / "out", classifier_run=None,
                                 reference_classifier=tmp_path / "judge")
    fid = out["class_fidelity"]
    assert fid["reference_classifier"]["real_test"]["per_class_recall"][2] == 0.0  # below the threshold...
    assert fid["per_class"]["C"]["judge_real_auroc"] == pytest.approx(1.0)  # ...yet ranked perfectly
    assert fid["per_class"]["C"]["judge_recognises"] is True
    assert fid["classes_judge_cannot_recognise"] == []
    assert fid["judge_ceiling"] == "judge_real_auroc"
    assert fid["mean_auroc"] == pytest.approx(np.mean([fid["per_class"][n]["auroc"] for n in NAMES]))
    assert fid["classes_in_means"]["tail"] == [1, 1]
    # the evaluate report names the column honestly and lists no unrecognised class
    from medlt.report.class_sections import class_fidelity_blocks

    blocks = class_fidelity_blocks({"generation": out, "label_space": {"names": list(NAMES)},
                                    "train_class_counts": [30, 10, 2]})
    table = next(b for b in blocks if b[0] == "table")
    assert "judge real AUROC" in table[1] and table[2][2][table[1].index("judge real AUROC")] == pytest.approx(1.0)
    assert any(b[0] == "p" and "at or below chance (0.5) (none)" in b[1] for b in blocks)


def test_judge_at_chance_on_real_images_is_excluded(monkeypatch, tmp_path):
    from medlt.metrics.fidelity import mark_judge_real_auroc

    rep = class_fidelity_multi_label(np.eye(3, dtype=int)[[0, 1, 2, 0, 1, 2]], np.full((6, 3), 0.4), NAMES, GROUPS)
    out = mark_judge_real_auroc(rep, {"A": 0.9, "B": 0.5, "C": float("nan")}, NAMES, GROUPS)
    assert out["classes_judge_cannot_recognise"] == ["B", "C"]  # at chance, unknown
    assert out["per_class"]["A"]["judge_recognises"] is True and out["judge_real_auroc_above"] == 0.5
    assert out["classes_in_means"]["all"][0] == 1
