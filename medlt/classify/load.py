"""`load_classifier(run_or_checkpoint)`."""

from __future__ import annotations

from pathlib import Path

import torch

from medlt.classify.models import ClassifierNet, build_classifier_net
from medlt.data.labels import LabelSpace
from medlt.errors import CheckpointError
from medlt.recipe import Recipe, recipe_from_resolved
from medlt.utils.checkpoint import file_sha256, load_checkpoint


class Classifier:
    """A trained classifier in eval mode.

    .label_space, .recipe, .train_class_counts, .checkpoint_path, .checkpoint_sha256, .spatial_dims,
    .feature_dim; .predict_proba(images) -> (B, K) softmax (single-label) or sigmoid (multi-label);
    .features(images) -> (B, D) penultimate features. Images are in model space ([-1, 1]),
    (B, 1, H, W) or (B, 1, H, W, D); batches are moved to the classifier's device.
    """

    def __init__(self, net: ClassifierNet, label_space: LabelSpace, recipe: Recipe, state: dict,
                 path: Path, device: torch.device):
        self.net = net.eval()
        self.label_space = label_space
        self.recipe = recipe
        self.train_class_counts = list(state.get("train_class_counts", []))
        self.spatial_dims = int(state["spatial_dims"])
        self.feature_dim = int(net.feature_dim)
        self.checkpoint_path = path
        self.checkpoint_sha256 = file_sha256(path)
        self.device = device
        self.meta = dict(state.get("meta", {}))

    def _prep(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(images)
        if x.ndim == self.spatial_dims + 1:  # a single image
            x = x.unsqueeze(0)
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected (B, 1, ...) images with {self.spatial_dims} spatial dims, "
                             f"got shape {tuple(x.shape)}")
        return x.to(self.device, torch.float32)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self._prep(images)).float().cpu()

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        z = self.logits(images)
        return torch.sigmoid(z) if self.label_space.multi_label else torch.softmax(z, dim=1)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(self._prep(images)).float().cpu()


def checkpoint_of(run_or_checkpoint: str | Path) -> Path:
    p = Path(run_or_checkpoint)
    if p.is_dir():
        p = p / "checkpoints" / "best.pt"
    if not p.is_file():
        raise CheckpointError(f"no classifier checkpoint at {p} (train one with `medlt classify`)")
    return p


def load_classifier(run_or_checkpoint: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """Load RUN/checkpoints/best.pt (or a given .pt written by `medlt classify`)."""
    path = checkpoint_of(run_or_checkpoint)
    state = load_checkpoint(path)
    missing = [k for k in ("model", "recipe", "label_space", "spatial_dims") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a medlt classifier checkpoint (missing {missing})")
    recipe = recipe_from_resolved(state["recipe"])
    ls = LabelSpace.from_dict(state["label_space"])
    net = build_classifier_net(recipe.classifier, int(state["spatial_dims"]), ls.num_classes)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the recorded architecture "
                              f"({str(e).splitlines()[0]})") from None
    dev = torch.device(device)
    return Classifier(net.to(dev), ls, recipe, state, path, dev)
