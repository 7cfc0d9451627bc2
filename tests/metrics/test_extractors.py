import pytest
import torch

import medlt.classify.extractor  # noqa: F401  (registers the classifier kinds)
from medlt.classify.models import build_classifier_net
from medlt.errors import CheckpointError
from medlt.metrics.extractors import EXTRACTORS, load_feature_extractor
from medlt.recipe import Recipe


def _recipe(tmp_path):
    return Recipe.model_validate({"name": "x", "data": {"format": "manifest", "root": str(tmp_path)},
                                  "classifier": {"architecture": "resnet18", "widen_factor": 0.125}})


def test_torchscript_file_is_detected_and_named(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 3), torch.nn.ReLU())  # (B, 5, h, w): spatially pooled
    torch.jit.script(net).save(str(tmp_path / "inc.pt"))
    ext = load_feature_extractor(tmp_path / "inc.pt")
    assert ext.name.startswith("torchscript:inc.pt@")
    x = torch.randn(3, 1, 12, 12)
    assert torch.allclose(ext(x), net(x).flatten(2).mean(2), atol=1e-6)


def test_state_dict_needs_recipe_then_matches_net(tmp_path):
    rec = _recipe(tmp_path)
    net = build_classifier_net(rec.classifier, 2, 4).eval()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="feature-extractor-recipe"):
        load_feature_extractor(tmp_path / "sd.pt")
    ext = load_feature_extractor(tmp_path / "sd.pt", recipe=rec, spatial_dims=2)
    assert ext.name.startswith("state-dict:resnet18:sd.pt@")
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ext(x), net.features(x), atol=1e-6)
    wrong = rec.model_copy(update={"classifier": rec.classifier.model_copy(update={"architecture": "densenet121"})})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_feature_extractor(tmp_path / "sd.pt", recipe=wrong, spatial_dims=2)


def test_registry_and_missing_file(tmp_path):
    assert {"classifier", "torchscript", "state-dict", "random-2d"} <= set(EXTRACTORS.names())
    with pytest.raises(CheckpointError, match="not found"):
        load_feature_extractor(tmp_path / "none.pt")
    a = EXTRACTORS.get("random-2d")(seed=3)
    b = EXTRACTORS.get("random-2d")(seed=3)
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(a(x), b(x)) and "random-init" in a.name
