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


@pytest.mark.parametrize("name, content, looks_like", [
    ("guidance.json", b'{"scales": {"head": 1.0}}', "the file is JSON text;"),
    ("list.json", b"  [1, 2]\n", "the file is JSON text (a list);"),
    ("recipe.yaml", "name: x  # ü\n".encode(), "the file is a text file;"),
    ("empty.pt", b"", "the file is empty;"),
    ("grid.png", b"\x89PNG\r\n\x1a\n" + bytes(40), "the file is a PNG image;"),
    ("vol.nii.gz", b"\x1f\x8b\x08" + bytes(40), "the file is gzip-compressed data"),
])
def test_a_file_that_is_no_checkpoint_says_what_it_looks_like(tmp_path, name, content, looks_like):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: not a checkpoint: ") and looks_like in msg, msg
    assert "a checkpoint is the .pt file medlt writes" in msg and "pickled" not in msg and "\n" not in msg


def test_a_zip_that_is_no_torch_archive_is_named(tmp_path):
    import zipfile

    p = tmp_path / "run.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("metrics.csv", "step,loss\n")
    with pytest.raises(CheckpointError, match="the file is a zip archive without PyTorch's data.pkl"):
        load_checkpoint(p)


def test_real_checkpoints_still_load_and_objects_are_still_refused(tmp_path):
    state = {"model": {"w": torch.ones(2)}, "step": 3}
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)  # pickle header
    assert load_checkpoint(tmp_path / "legacy.pt")["step"] == 3
    assert load_checkpoint(save_checkpoint(tmp_path / "new.pt", state))["step"] == 3
    torch.save({"obj": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="contains pickled Python objects"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "new.pt").read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "cut.pt")


def test_sample_with_a_json_checkpoint_is_one_line(tmp_path, capsys):
    from pathlib import Path

    from tests.cli_run import run_cli

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "phantom" / "nih_cxr_lt.yaml"
    p = tmp_path / "guidance.json"
    p.write_text('{"scales": {"tail": 2.0}}')
    code, _, err = run_cli(["sample", recipe, "--checkpoint", p, "--class", "Mass", "--out", tmp_path / "s",
                            "--device", "cpu"], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {p}: not a checkpoint: the file is JSON text;") and "pickled" not in err
