"""Tiny autoencoder + latent-diffusion recipes over the diffusion tests' in-memory toy set."""

from __future__ import annotations

import copy
from pathlib import Path

from medlt.recipe.load import recipe_from_dict

AE = {"channels": [8, 16], "attention_levels": [False, False], "num_res_blocks": 1, "latent_channels": 2,
      "norm_num_groups": 4, "encoder_attention": False, "decoder_attention": False,
      "training": {"max_steps": 6, "per_rank_batch_size": 4, "lr": 3e-3, "warmup_steps": 1,
                   "checkpoint_every_steps": 3, "recon_grid_every_steps": 3, "recon_grid_images": 4,
                   "log_every_steps": 1, "device": "cpu", "scale_factor_images": 16},
      "evaluate": {"worst_per_class": 2, "batch_size": 8}}


def tiny_recipe(tmp: Path, *, depth: int | None = None, size: int = 8, multi_label: bool = False,
                autoencoder: Path | None = None, extra: dict | None = None, overrides: list[str] | None = None):
    data = {
        "name": "tiny-latent", "seed": 5,
        "data": {"format": "manifest", "root": str(tmp), "multi_label": multi_label,
                 "image_size": [size, size] if depth is None else [size, size, depth]},
        "autoencoder": copy.deepcopy(AE),
        "model": {"spatial_dims": 2 if depth is None else 3, "in_channels": 2, "channels": [8, 8],
                  "attention_levels": [False, False], "num_res_blocks": 1, "num_head_channels": 8,
                  "norm_num_groups": 4, "cross_attention_dim": 8},
        "diffusion": {"num_train_timesteps": 100, "clip_sample": False},
        "training": {"max_steps": 4, "per_rank_batch_size": 4, "lr": 1e-3, "warmup_steps": 1,
                     "ema_decay": 0.9, "checkpoint_every_steps": 2, "sample_grid_every_steps": 4,
                     "log_every_steps": 1, "sample_grid_per_class": 1, "device": "cpu"},
        "sampling": {"num_inference_steps": 3, "batch_size": 8},
    }
    if autoencoder is not None:
        data["model"]["latent"] = {"autoencoder": str(autoencoder)}
    for k, v in (extra or {}).items():
        data[k] = {**data.get(k, {}), **copy.deepcopy(v)} if isinstance(v, dict) else v
    return recipe_from_dict(data, base_dir=Path(tmp), overrides=overrides or [])
