"""Autoencoder loss terms (as in MONAI's generative tutorials and MAISI):

- reconstruction: mean absolute error |x̂ − x| over all voxels (L1);
- KL: KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (μ² + σ² − log σ² − 1), summed over the latent's channels and
  voxels, averaged over the batch;
- adversarial (optional): MONAI `PatchAdversarialLoss` (least squares) on `PatchDiscriminator` logits;
- perceptual (optional): MONAI `PerceptualLoss` with torchvision ResNet-50 weights from a local
  file (3D: 2.5D slices); nothing is downloaded.
"""

from __future__ import annotations

import torch

from medlt.errors import RecipeError


def l1_per_sample(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) mean |recon − x| per sample."""
    return (recon.float() - x.float()).abs().flatten(1).mean(dim=1)


def kl_per_sample(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(B,) ½ Σ_{c, voxels} (μ² + σ² − log σ² − 1)."""
    mu, sigma = mu.float(), sigma.float()
    var = sigma.pow(2)
    return 0.5 * (mu.pow(2) + var - torch.log(var) - 1).flatten(1).sum(dim=1)


def build_perceptual_loss(cfg, spatial_dims: int):
    """MONAI PerceptualLoss on a local torchvision ResNet-50 weights file (recipe key
    autoencoder.perceptual.weights); RecipeError when the file or torchvision is missing."""
    path = cfg.weights
    if not path.is_file():
        raise RecipeError(f"recipe key 'autoencoder.perceptual.weights': {path}: no such file (perceptual "
                          f"weights are never downloaded; give a local torchvision ResNet-50 state dict)")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise RecipeError("recipe key 'autoencoder.perceptual': needs torchvision (pip install torchvision), "
                          "or remove the key") from None
    from monai.losses import PerceptualLoss

    try:
        return PerceptualLoss(spatial_dims=spatial_dims, network_type="resnet50", is_fake_3d=spatial_dims == 3,
                              pretrained=True, pretrained_path=str(path),
                              pretrained_state_dict_key=cfg.state_dict_key)
    except (RuntimeError, KeyError) as e:
        raise RecipeError(f"recipe key 'autoencoder.perceptual.weights': {path}: not a ResNet-50 state dict "
                          f"({str(e).splitlines()[0][:120]})") from None
