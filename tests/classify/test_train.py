import json

import pytest
import torch

from medlt.classify import load_classifier
from medlt.classify.losses import class_balanced_weights, classification_loss, per_sample_loss
from medlt.classify.train import fit_classifier
from medlt.utils.checkpoint import load_checkpoint


def test_train_2d_single_label_learns_and_loads(tiny, tmp_path):
    make_data, tiny_recipe = tiny
    data = make_data([24, 12, 6])
    recipe = tiny_recipe(tmp_path, epochs=4)
    summary = fit_classifier(recipe, data, tmp_path / "run", show_progress=False)
    assert len(summary["history"]) == 4
    h = summary["history"]
    assert h[-1]["train_loss"] < h[0]["train_loss"]  # real optimisation steps happened
    assert summary["best_val_score"] == max(e["val_score"] for e in h)
    clf = load_classifier(tmp_path / "run")
    assert clf.label_space == data.label_space
    assert clf.train_class_counts == [24, 12, 6]
    x = torch.stack([data.val.dataset[i]["image"] for i in range(5)])
    p = clf.predict_proba(x)
    assert p.shape == (5, 3) and torch.allclose(p.sum(1), torch.ones(5), atol=1e-5)
    f = clf.features(x)
    assert f.shape == (5, clf.feature_dim)
    # predict_proba is the softmax of the head applied to features
    assert torch.allclose(torch.softmax(clf.net.head(f), 1), p, atol=1e-5)
    assert (tmp_path / "run" / "recipe.yaml").exists()
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["val_score"] == pytest.approx(summary["best_val_score"])


def test_train_3d_multi_label(tiny, tmp_path):
    make_data, tiny_recipe = tiny
    data = make_data([10, 6], shape=(16, 16, 8), multi_label=True, val_per_class=3)
    recipe = tiny_recipe(tmp_path, epochs=1, method="class-balanced")
    summary = fit_classifier(recipe, data, tmp_path / "run3d", show_progress=False)
    assert "tpr_tnr" in summary["selection_metric"]
    clf = load_classifier(tmp_path / "run3d" / "checkpoints" / "best.pt")
    p = clf.predict_proba(data.val.dataset[0]["image"])
    assert p.shape == (1, 2) and ((p > 0) & (p < 1)).all()


def test_crt_retrains_only_the_head(tiny, tmp_path):
    make_data, tiny_recipe = tiny
    data = make_data([20, 8, 4])
    recipe = tiny_recipe(tmp_path, epochs=2, method="crt", crt_epochs=2)
    summary = fit_classifier(recipe, data, tmp_path / "crt", show_progress=False)
    stages = [e["stage"] for e in summary["history"]]
    assert stages == ["main", "main", "crt", "crt"]
    main = load_checkpoint(tmp_path / "crt" / "checkpoints" / "best_main.pt")["model"]
    final = load_checkpoint(tmp_path / "crt" / "checkpoints" / "best.pt")
    assert final["stage"] == "crt"
    back = [k for k in main if k.startswith("backbone.")]
    assert back and all(torch.equal(main[k], final["model"][k]) for k in back)
    assert not torch.equal(main["head.weight"], final["model"]["head.weight"])


def test_resume_continues_after_last_epoch(tiny, tmp_path):
    make_data, tiny_recipe = tiny
    data = make_data([12, 6])
    fit_classifier(tiny_recipe(tmp_path, epochs=1), data, tmp_path / "r", show_progress=False)
    last = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    assert last["stage"] == "done" and last["epoch"] == 1
    # pretend the run was interrupted after epoch 1 of 3, then resume
    last["stage"] = "main"
    torch.save(last, tmp_path / "r" / "checkpoints" / "last.pt")
    summary = fit_classifier(tiny_recipe(tmp_path, epochs=3), data, tmp_path / "r", show_progress=False)
    assert [e["epoch"] for e in summary["history"]] == [1, 2, 3]
    assert json.loads((tmp_path / "r" / "history.json").read_text())[0] == summary["history"][0]


def test_class_balanced_weights_and_losses():
    w = class_balanced_weights([1000, 10], beta=0.999)
    assert w.sum() == pytest.approx(2.0) and w[1] > w[0]
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0])
    plain = per_sample_loss(logits, y, multi_label=False)["ce"]
    assert torch.allclose(plain, torch.nn.functional.cross_entropy(logits, y, reduction="none"))
    assert classification_loss(logits, y, multi_label=False)["ce"] == pytest.approx(float(plain.mean()))
    bce = per_sample_loss(logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), multi_label=True)["bce"]
    assert bce.shape == (2,)


def test_load_classifier_errors(tmp_path):
    from medlt.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no classifier checkpoint"):
        load_classifier(tmp_path)
    torch.save({"foo": 1}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a medlt classifier"):
        load_classifier(tmp_path / "x.pt")
