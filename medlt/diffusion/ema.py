"""Exponential moving average of model weights (samples and evaluation use the EMA copy)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """shadow ← d·shadow + (1 − d)·param after every optimizer step, d = min(decay, (1+n)/(10+n))
    after n updates (the usual EMA warm-up, so short runs are not dominated by the initial weights);
    buffers copied.

    Kept over torch.optim.swa_utils.AveragedModel + get_ema_multi_avg_fn, which is not the same: a
    fixed decay (no warm-up), a copy of the weights on its first update, and a state dict with
    `module.`-prefixed keys and `n_averaged`, which existing checkpoints' "ema" entries do not have."""

    def __init__(self, model: nn.Module, decay: float, num_updates: int = 0):
        self.decay = float(decay)
        self.num_updates = int(num_updates)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        self.num_updates += 1
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for eb, b in zip(self.model.buffers(), model.buffers(), strict=True):
            eb.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
