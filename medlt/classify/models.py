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
