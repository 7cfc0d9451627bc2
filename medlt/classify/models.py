"""Classifier networks: MONAI DenseNet121 / ResNet (2D or 3D, one input channel) split into a
feature backbone (penultimate features) and a linear head, so that features are one call and
decoupled classifier re-training (cRT) can re-train the head alone."""

from __future__ import annotations

import torch
from torch import nn

from medlt.recipe.evaluate import ClassifierConfig
from medlt.registry import Registry

ARCHITECTURES: Registry = Registry("classifier architecture")


class ClassifierNet(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def reset_head(self) -> None:
        self.head.reset_parameters()


@ARCHITECTURES.register("densenet121")
def _densenet121(cfg: ClassifierConfig, spatial_dims: int, num_classes: int) -> ClassifierNet:
    from monai.networks.nets import DenseNet121

    net = DenseNet121(spatial_dims=spatial_dims, in_channels=1, out_channels=num_classes)
    dim = net.class_layers.out.in_features
    net.class_layers.out = nn.Identity()
    return ClassifierNet(net, dim, num_classes)


def _resnet(factory_name: str):
    def build(cfg: ClassifierConfig, spatial_dims: int, num_classes: int) -> ClassifierNet:
        from monai.networks import nets

        net = getattr(nets, factory_name)(spatial_dims=spatial_dims, n_input_channels=1,
                                          num_classes=num_classes, widen_factor=cfg.widen_factor)
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return ClassifierNet(net, dim, num_classes)

    return build


ARCHITECTURES.register("resnet18")(_resnet("resnet18"))
ARCHITECTURES.register("resnet50")(_resnet("resnet50"))


def build_classifier_net(cfg: ClassifierConfig, spatial_dims: int, num_classes: int) -> ClassifierNet:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return ARCHITECTURES.get(cfg.architecture, key="classifier.architecture")(cfg, spatial_dims, num_classes)


def _unwrap_state_dict(obj, path) -> dict:
    from medlt.errors import CheckpointError

    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"classifier.init_weights {path}: not a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def load_initial_weights(net: ClassifierNet, path) -> dict:
    """Initialise `net` from a local weights file (torch.load weights_only=True; nothing downloaded).

    Accepted: a medlt classifier checkpoint or state dict (keys `backbone.*`, `head.*`), or a state
    dict of the backbone network itself (e.g. a MONAI ResNet's; torchvision ResNets use the same
    key names). The backbone must fit exactly; the original classification layer of a backbone
    state dict (`fc.*`, `class_layers.out.*`) is dropped, and a `head.*` is loaded only when its
    shape fits (otherwise the head keeps its random initialisation). A first convolution stored
    with 3 input channels (RGB) is summed to the model's 1 channel (the same response as the grey
    image repeated on R, G, B); a convolution bias absent from the file (torchvision's ResNets have
    bias-free downsample convolutions, MONAI's have a bias) is set to 0, which is the same function.
    Returns what was loaded; CheckpointError in one line otherwise.
    """
    from pathlib import Path

    from medlt.errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"classifier.init_weights: file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"classifier.init_weights {path}: not a weights file torch.load(weights_only=True) "
                              f"can read ({type(e).__name__})") from None
    sd = _unwrap_state_dict(obj, path)
    if any(k.startswith("backbone.") for k in sd):
        backbone = {k.removeprefix("backbone."): v for k, v in sd.items() if k.startswith("backbone.")}
        head = {k.removeprefix("head."): v for k, v in sd.items() if k.startswith("head.")}
    else:
        backbone = {k: v for k, v in sd.items() if not k.startswith(("fc.", "class_layers.out."))}
        head = {}
    own = net.backbone.state_dict()
    zero_bias = [k for k in own if k not in backbone and k.endswith(".bias")
                 and own[k].ndim == 1 and own.get(k[:-5] + ".weight", torch.empty(0)).ndim >= 3
                 and k[:-5] + ".weight" in backbone]
    for k in zero_bias:  # a convolution stored without bias (torchvision's downsample) = zero bias
        backbone[k] = torch.zeros_like(own[k])
    missing = [k for k in own if k not in backbone]
    unexpected = [k for k in backbone if k not in own]
    adapted = []
    for k, v in list(backbone.items()):
        if k in own and v.shape != own[k].shape:
            if v.ndim >= 3 and v.shape[1] == 3 and own[k].shape[1] == 1 and v.shape[:1] + v.shape[2:] == \
                    own[k].shape[:1] + own[k].shape[2:]:
                backbone[k] = v.sum(dim=1, keepdim=True)
                adapted.append(k)
    wrong = [f"{k} {tuple(backbone[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in backbone and backbone[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        def few(xs):
            return ", ".join(xs[:3]) + (f" (+{len(xs) - 3} more)" if len(xs) > 3 else "")

        parts = [f"missing {few(missing)}" if missing else "", f"unexpected {few(unexpected)}" if unexpected else "",
                 f"shape {few(wrong)}" if wrong else ""]
        raise CheckpointError(f"classifier.init_weights {path}: keys don't fit the {type(net.backbone).__name__} "
                              f"backbone: " + "; ".join(p for p in parts if p))
    net.backbone.load_state_dict(backbone, strict=True)
    head_loaded = bool(head) and all(k in head and head[k].shape == v.shape for k, v in net.head.state_dict().items())
    if head_loaded:
        net.head.load_state_dict(head)
    return {"init_weights": str(path), "init_head_loaded": head_loaded, "init_rgb_summed": adapted,
            "init_zero_conv_bias": zero_bias}
