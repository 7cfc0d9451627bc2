"""Feature extractors for FID / KID / memorization (pluggable, offline).

Every extractor has a `name` that goes into every reported distance (FID values are only
comparable under the same name), `spatial_dims` (2 or 3) and `__call__(images) -> (B, D)`.

Registered kinds (`EXTRACTORS`):
- "classifier": penultimate features of a medlt classifier (RUN dir or its .pt) - the default,
  trained by `medlt classify` on the real training split, always available offline;
- "torchscript": any local TorchScript file whose forward maps (B, 1, ...) model-space images to
  (B, D) or (B, D, ...) features (spatial dims are averaged away);
- "state-dict": a state dict of a medlt ClassifierNet + the recipe whose `classifier:` section
  builds the architecture (`--feature-extractor-recipe`);
- "random-2d": a randomly initialised (seeded) 2D ResNet-18 - used only for CT 2.5D FID when no 2D
  extractor is given; named as such, never comparable with a trained extractor.
`load_feature_extractor(path)` detects TorchScript vs medlt checkpoint vs state dict.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from medlt.errors import CheckpointError
from medlt.registry import Registry
from medlt.utils.checkpoint import file_sha256, load_checkpoint

EXTRACTORS: Registry = Registry("feature extractor")


class FeatureExtractor:
    def __init__(self, name: str, fn, spatial_dims: int | None, device: torch.device | str = "cpu"):
        self.name, self._fn, self.spatial_dims = name, fn, spatial_dims
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        f = self._fn(torch.as_tensor(images).to(self.device, torch.float32))
        if f.ndim > 2:  # pool away any spatial dims
            f = f.flatten(2).mean(2)
        return f.float().cpu()


@EXTRACTORS.register("classifier")
def classifier_extractor(path: str | Path, device: str = "cpu", **_) -> FeatureExtractor:
    from medlt.classify.load import load_classifier

    clf = load_classifier(path, device)
    src = "real+synthetic" if clf.meta.get("train_manifest") else "real"
    name = (f"classifier:{clf.recipe.classifier.architecture}-{clf.spatial_dims}d"
            f"[train={src}]@{clf.checkpoint_sha256[:12]}")
    return FeatureExtractor(name, clf.net.features, clf.spatial_dims, device)


@EXTRACTORS.register("torchscript")
def torchscript_extractor(path: str | Path, device: str = "cpu", **_) -> FeatureExtractor:
    try:
        model = torch.jit.load(str(path), map_location=device).eval()
    except Exception as e:
        raise CheckpointError(f"{path}: cannot load TorchScript model ({e.__class__.__name__})") from None
    return FeatureExtractor(f"torchscript:{Path(path).name}@{file_sha256(path)[:12]}", model, None, device)


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


@EXTRACTORS.register("random-2d")
def random_2d_extractor(path=None, device: str = "cpu", seed: int = 0, **_) -> FeatureExtractor:
    from monai.networks.nets import resnet18

    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(seed)
        net = resnet18(spatial_dims=2, n_input_channels=1, num_classes=1, widen_factor=0.5)
    net.fc = torch.nn.Identity()
    net = net.to(device).eval()
    return FeatureExtractor(f"random-init-resnet18-2d(seed={seed})", net, 2, device)


def load_feature_extractor(path: str | Path, *, device: str = "cpu", recipe=None,
                           spatial_dims: int = 2) -> FeatureExtractor:
    """Auto-detect: a medlt classifier RUN dir or checkpoint, a TorchScript file, or a state dict."""
    p = Path(path)
    if p.is_dir():
        return classifier_extractor(p, device)
    if not p.is_file():
        raise CheckpointError(f"--feature-extractor: file not found: {p}")
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            if any(n.endswith("/code/") or "/code/" in n for n in z.namelist()):
                return torchscript_extractor(p, device)
    return state_dict_extractor(p, device, recipe=recipe, spatial_dims=spatial_dims)
