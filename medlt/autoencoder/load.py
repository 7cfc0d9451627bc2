"""A trained autoencoder run, loaded for latent diffusion, decoding and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from medlt.autoencoder.model import build_autoencoder
from medlt.errors import CheckpointError, RecipeError
from medlt.recipe.autoencoder import AutoencoderConfig
from medlt.utils.checkpoint import file_sha256, load_checkpoint

REQUIRED = ("kind", "ema", "recipe", "spatial_dims", "image_size", "latent_size", "latent_channels",
            "scale_factor")


def resolve_autoencoder(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (-> RUN/checkpoints/last.pt)."""
    p = Path(path)
    return p / "checkpoints" / "last.pt" if p.is_dir() else p


@dataclass
class Autoencoder:
    """EMA (or plain, without EMA) weights of a trained AutoencoderKL with its latent scale factor."""

    model: nn.Module
    config: AutoencoderConfig
    spatial_dims: int
    image_size: list[int]
    latent_size: list[int]
    latent_channels: int
    scale_factor: float
    sha256: str
    path: Path
    step: int = 0
    recipe: dict = field(default_factory=dict)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_channels, *self.latent_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def decode_settings(self) -> dict:
        """The decoding `decode_scaled` uses: {decode, decode_tile, decode_overlap}."""
        return {"decode": self.config.decode, "decode_tile": self.config.decode_tile,
                "decode_overlap": float(self.config.decode_overlap)}

    def use_decode_settings(self, decode: str, tile: list[int] | None, overlap: float) -> None:
        """Decode with these run-time settings (autoencoder.decode, decode_tile, decode_overlap of
        the current recipe) instead of the ones stored with the weights; the network is unchanged."""
        self.config = self.config.model_copy(update={"decode": decode, "decode_tile": None if tile is None else
                                                     [int(t) for t in tile], "decode_overlap": float(overlap)})

    @torch.no_grad()
    def encode_scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Diffusion-space latents: scale_factor · μ(x)."""
        mu, _ = self.model.encode(x.to(self.device).float())
        return mu.float() * self.scale_factor

    @torch.no_grad()
    def decode_scaled(self, z: torch.Tensor) -> torch.Tensor:
        """Images (model space, clamped to [-1, 1]) from diffusion-space latents z (decodes z / s),
        plainly or by sliding windows per `autoencoder.decode` (medlt.autoencoder.decode)."""
        from medlt.autoencoder.decode import decode

        x = decode(self.model, z.to(self.device).float() / self.scale_factor, mode=self.config.decode,
                   tile=self.config.decode_tile, overlap=self.config.decode_overlap)
        return x.float().clamp(-1, 1)

    def checkpoint_entry(self) -> dict:
        """What a latent-diffusion checkpoint stores so that it decodes without the autoencoder run."""
        return {"latent": {
            "autoencoder_sha256": self.sha256, "autoencoder_path": str(self.path),
            "config": self.config.model_dump(mode="json"), "spatial_dims": self.spatial_dims,
            "image_size": list(self.image_size), "latent_size": list(self.latent_size),
            "latent_channels": self.latent_channels, "scale_factor": float(self.scale_factor),
            "weights": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
        }}


def _build(cfg: AutoencoderConfig, spatial_dims: int, weights: dict, where: str) -> nn.Module:
    model = build_autoencoder(cfg, spatial_dims)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{where}: autoencoder weights do not fit its config "
                              f"({str(e).splitlines()[0]})") from None
    return model.eval()


def load_autoencoder(path: str | Path, device: str | torch.device = "cpu", *,
                     key: str | None = None) -> Autoencoder:
    """Load RUN (or RUN/checkpoints/last.pt) of `medlt train-autoencoder`. `key` (e.g.
    "model.latent.autoencoder") names the recipe key in errors."""
    from medlt.recipe import recipe_from_resolved

    p = resolve_autoencoder(path)
    where = f"recipe key '{key}': {p}" if key else str(p)
    if not p.is_file():
        err = RecipeError if key else CheckpointError
        raise err(f"{where}: no autoencoder checkpoint (train one with `medlt train-autoencoder RECIPE "
                  f"--out RUN`)")
    state = load_checkpoint(p)
    missing = [k for k in REQUIRED if k not in state]
    if missing or state.get("kind") != "medlt-autoencoder":
        err = RecipeError if key else CheckpointError
        raise err(f"{where}: not a medlt autoencoder checkpoint (missing {missing or ['kind']})")
    cfg = recipe_from_resolved(state["recipe"]).autoencoder
    model = _build(cfg, int(state["spatial_dims"]), state["ema"], str(p)).to(torch.device(device))
    return Autoencoder(model, cfg, int(state["spatial_dims"]), [int(v) for v in state["image_size"]],
                       [int(v) for v in state["latent_size"]], int(state["latent_channels"]),
                       float(state["scale_factor"]), file_sha256(p), p, int(state.get("step", 0)),
                       state["recipe"])


def autoencoder_from_entry(entry: dict, device: str | torch.device, where: str) -> Autoencoder:
    """The autoencoder a latent-diffusion checkpoint carries (`Autoencoder.checkpoint_entry`)."""
    cfg = AutoencoderConfig.model_validate(entry["config"])
    model = _build(cfg, int(entry["spatial_dims"]), entry["weights"], where).to(torch.device(device))
    return Autoencoder(model, cfg, int(entry["spatial_dims"]), list(entry["image_size"]),
                       list(entry["latent_size"]), int(entry["latent_channels"]), float(entry["scale_factor"]),
                       str(entry["autoencoder_sha256"]), Path(entry["autoencoder_path"]))
