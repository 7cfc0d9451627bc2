"""The classifier-based feature extractors ("classifier", "state-dict"), registered into
`medlt.metrics.extractors.EXTRACTORS` from this side so that metrics never imports classify."""

from __future__ import annotations

from pathlib import Path

from medlt.errors import CheckpointError
from medlt.metrics.extractors import EXTRACTORS, FeatureExtractor
from medlt.utils.checkpoint import file_sha256, load_checkpoint


@EXTRACTORS.register("classifier")
def classifier_extractor(path: str | Path, device: str = "cpu", **_) -> FeatureExtractor:
    from medlt.classify.load import load_classifier

    clf = load_classifier(path, device)
    src = clf.meta.get("reference_kind") or ("real+synthetic" if clf.meta.get("train_manifest") else "real")
    name = (f"classifier:{clf.recipe.classifier.architecture}-{clf.spatial_dims}d"
            f"[train={src}]@{clf.checkpoint_sha256[:12]}")
    return FeatureExtractor(name, clf.net.features, clf.spatial_dims, device)


@EXTRACTORS.register("state-dict")
def state_dict_extractor(path: str | Path, device: str = "cpu", recipe=None, spatial_dims: int = 2,
                         **_) -> FeatureExtractor:
    from medlt.classify.models import build_classifier_net

    state = load_checkpoint(path)
    if "model" in state and "recipe" in state:  # a medlt classifier checkpoint
        return classifier_extractor(path, device)
    if recipe is None:
        raise CheckpointError(f"{path}: a plain state dict needs --feature-extractor-recipe (its "
                              f"classifier: section builds the architecture)")
    if "head.weight" not in state:
        raise CheckpointError(f"{path}: not a medlt ClassifierNet state dict (no head.weight)")
    net = build_classifier_net(recipe.classifier, spatial_dims, int(state["head.weight"].shape[0]))
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not fit classifier.architecture="
                              f"{recipe.classifier.architecture} ({str(e).splitlines()[0]})") from None
    net = net.to(device).eval()
    return FeatureExtractor(f"state-dict:{recipe.classifier.architecture}:{Path(path).name}"
                            f"@{file_sha256(path)[:12]}", net.features, spatial_dims, device)
