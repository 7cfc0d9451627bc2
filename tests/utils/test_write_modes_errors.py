"""Written files get the umask's mode; failed writes are one OutputError line naming the path; a
pickled checkpoint is refused in one line without torch's advice."""

import errno
import os
import stat

import pytest
import torch

from medlt.errors import CheckpointError, OutputError
from medlt.utils import atomic
from medlt.utils.atomic import atomic_write_bytes, atomic_write_text, current_umask
from medlt.utils.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_get_the_umask_mode(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    text = atomic_write_text(tmp_path / "a.txt", "x")
    ckpt = save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(2)})
    for p in (text, ckpt):
        assert stat.S_IMODE(p.stat().st_mode) == mode, oct(p.stat().st_mode)


def test_write_under_a_regular_file_is_one_line_naming_the_path(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / "sub" / "out.json"
    with pytest.raises(OutputError) as e:
        atomic_write_text(target, "{}")
    msg = str(e.value)
    assert msg.startswith(f"cannot write {target}: ") and "\n" not in msg
    assert "Not a directory" in msg or "File exists" in msg


def test_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(OutputError, match=r"cannot write .*out\.bin: No space left on device$"):
        atomic_write_bytes(tmp_path / "out.bin", b"123")
    assert list(tmp_path.iterdir()) == []


def test_writer_failing_mid_file_is_an_output_error(tmp_path):
    def writer(f):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError, match="No space left on device"):
        atomic.atomic_write_with(tmp_path / "x.pt", writer)
    assert list(tmp_path.iterdir()) == []


class Payload:
    """An arbitrary object: pickled by torch.save, refused by weights_only loading."""


def test_pickled_checkpoint_is_refused_in_one_line_without_torch_advice(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, p)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert "\n" not in msg and "weights_only=False" not in msg and "trust" not in msg
    assert msg == (f"{p}: not a medlt checkpoint: it contains pickled Python objects; refused (medlt loads "
                   f"tensors and plain values only, weights_only=True)")


def test_truncated_checkpoint_is_one_line(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.zeros(100)})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:60])
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a readable checkpoint \(corrupt or truncated"):
        load_checkpoint(bad)
