"""Feature extractors for FID / KID / memorization (pluggable, offline).

Every extractor has a `name` that goes into every reported distance (FID values are only
comparable under the same name), `spatial_dims` (2 or 3) and `__call__(images) -> (B, D)`.

Registered kinds (`EXTRACTORS`); "classifier" and "state-dict" are registered by
`medlt.classify.extractor` (the classify layer builds on metrics, never the reverse):
- "classifier": penultimate features of a medlt classifier (RUN dir or its .pt) - the default,
  trained by `medlt classify` on the real training split, always available offline;
- "torchscript": any local TorchScript file whose forward maps (B, 1, ...) model-space images to
  (B, D) or (B, D, ...) features (spatial dims are averaged away);
- "state-dict": a state dict of a medlt ClassifierNet + the recipe whose `classifier:` section
  builds the architecture (`--feature-extractor-recipe`);
- "random-2d": a randomly initialised (seeded) 2D ResNet-18 - used only for CT 2.5D FID when no 2D
  extractor is given; named as such, never comparable with a trained extractor.
`load_feature_extractor(path)` detects TorchScript vs medlt checkpoint vs state dict (the latter two
need `medlt.classify.extractor` imported, which `medlt evaluate` does).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from medlt.errors import CheckpointError
from medlt.registry import Registry
from medlt.utils.checkpoint import file_sha256

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


@EXTRACTORS.register("torchscript")
def torchscript_extractor(path: str | Path, device: str = "cpu", **_) -> FeatureExtractor:
    try:
        model = torch.jit.load(str(path), map_location=device).eval()
    except Exception as e:
        raise CheckpointError(f"{path}: cannot load TorchScript model ({e.__class__.__name__})") from None
    return FeatureExtractor(f"torchscript:{Path(path).name}@{file_sha256(path)[:12]}", model, None, device)


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
        return _kind("classifier")(p, device)
    if not p.is_file():
        raise CheckpointError(f"--feature-extractor: file not found: {p}")
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            if any(n.endswith("/code/") or "/code/" in n for n in z.namelist()):
                return torchscript_extractor(p, device)
    return _kind("state-dict")(p, device, recipe=recipe, spatial_dims=spatial_dims)


def _kind(name: str):
    if name not in EXTRACTORS:
        raise CheckpointError(f"feature extractor kind '{name}' is not registered: import "
                              f"medlt.classify.extractor first")
    return EXTRACTORS.get(name)
