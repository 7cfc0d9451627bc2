import os
import random

import numpy as np
import pytest
import torch

from medlt.errors import CheckpointError
from medlt.utils.atomic import atomic_path, atomic_write_text
from medlt.utils.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from medlt.utils.seeding import derive_seed, rng_state, seed_everything, set_rng_state


class Evil:
    """An arbitrary class: a pickle that would run code on load; weights_only must refuse it."""


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_checkpoint_round_trip_weights_only(tmp_path):
    state = {"model": {"w": torch.randn(3)}, "step": 5, "recipe": {"name": "x", "lr": 1e-3}}
    p = save_checkpoint(tmp_path / "c" / "last.pt", state)
    back = load_checkpoint(p)
    assert torch.equal(back["model"]["w"], state["model"]["w"]) and back["step"] == 5
    assert len(file_sha256(p)) == 64


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)

    torch.save({"obj": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")


def test_rng_state_restores_all_generators(tmp_path):
    seed_everything(3)
    state = rng_state()
    save_checkpoint(tmp_path / "r.pt", {"rng": state})
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    assert derive_seed(0, "Mass", 3) == derive_seed(0, "Mass", 3) != derive_seed(0, "Mass", 4)
