"""A tiny in-memory training set and recipe for diffusion tests (no files, no DATA area needed):
class c's images have mean intensity that grows with c, so a simple class statistic separates them."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from medlt.data.labels import LabelSpace
from medlt.diffusion.data import TrainData, from_dataset
from medlt.recipe.load import recipe_from_dict

NAMES = ("alpha", "beta", "gamma")


class ToyDataset(Dataset):
    def __init__(self, n: int = 24, size: int = 8, multi_label: bool = False, depth: int | None = None,
                 counts: tuple[int, ...] = (12, 8, 4)):
        g = torch.Generator().manual_seed(0)
        self.items = []
        k = len(NAMES)
        spatial = (size, size) if depth is None else (size, size, depth)
        i = 0
        for c, nc in enumerate(counts):
            for _ in range(nc):
                if multi_label:
                    y = torch.zeros(k)
                    y[c] = 1.0
                    if i % 3 == 0:
                        y[(c + 1) % k] = 1.0
                    level = -0.6 + 0.6 * y.sum() / 2 + 0.3 * c
                    label = y
                else:
                    level = -0.6 + 0.6 * c
                    label = torch.tensor(c, dtype=torch.int64)
                img = (level + 0.05 * torch.randn((1, *spatial), generator=g)).clamp(-1, 1)
                self.items.append({"image": img.float(), "label": label, "id": f"toy{i}"})
                i += 1

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def toy_recipe(tmp: Path | str = "/tmp", overrides: list[str] | None = None, *, multi_label=False,
               depth: int | None = None, size: int = 8):
    data = {
        "name": "toy",
        "seed": 3,
        "data": {"format": "manifest", "root": str(tmp), "multi_label": multi_label,
                 "image_size": [size, size] if depth is None else [size, size, depth]},
        "model": {"spatial_dims": 2 if depth is None else 3, "channels": [8, 16],
                  "attention_levels": [False, True], "num_res_blocks": 1, "num_head_channels": 8,
                  "norm_num_groups": 4, "cross_attention_dim": 16},
        "diffusion": {"num_train_timesteps": 100},
        "training": {"max_steps": 6, "per_rank_batch_size": 4, "lr": 1e-3, "warmup_steps": 2,
                     "ema_decay": 0.9, "checkpoint_every_steps": 2, "sample_grid_every_steps": 1000,
                     "log_every_steps": 1, "sample_grid_per_class": 1, "device": "cpu"},
        "sampling": {"num_inference_steps": 3, "batch_size": 8},
    }
    return recipe_from_dict(data, base_dir=Path(tmp), overrides=overrides or [])


def toy_data(multi_label=False, depth=None, size=8, n_counts=(12, 8, 4)) -> TrainData:
    ls = LabelSpace(NAMES, multi_label)
    return from_dataset(ToyDataset(size=size, multi_label=multi_label, depth=depth, counts=n_counts), ls)


def main(argv: list[str]) -> None:
    """`python -m tests.diffusion.toy OUT [--resume] [k=v ...]`: train the toy recipe (for
    subprocess tests: resume after SIGKILL, DDP under torchrun)."""
    from medlt.diffusion.train import train
    from medlt.utils.distributed import cleanup

    out = Path(argv[0])
    resume = "--resume" in argv
    sets = [a for a in argv[1:] if a != "--resume"]
    recipe = toy_recipe(out.parent, sets)
    pause = float(os.environ.get("TOY_STEP_SLEEP_S", "0"))  # lets a test SIGKILL mid-run
    hook = (lambda step, terms: time.sleep(pause)) if pause else None
    try:
        train(recipe, out, resume=resume, data=toy_data(), step_hook=hook)
    finally:
        cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
