"""A phantom stopped while writing (SIGKILL, an interrupt) is restarted by running the same command
again, and so is the phantom oracle's phantom (what a bench killed in its oracle cell re-runs)."""

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest

from medlt.errors import DataError
from medlt.phantom import write_phantom
from medlt.phantom.write import MARKER, PARTIAL
from tests.cli_run import run_cli

ARGS = ["phantom", "--layout", "ct-rate", "--num-images", "10", "--image-size", "16", "--seed", "4"]

#: runs `medlt phantom ARGS` and SIGKILLs itself after the 4th volume (no cleanup code can run)
KILLED = """
import os, signal, sys
import medlt.cliutils as cu

def progress(iterable, **kw):
    for i, x in enumerate(iterable):
        if i == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        yield x

cu.progress = progress
from medlt.cli import main
main(sys.argv[1:])
"""


class Stop(BaseException):
    """Stands for a kill: not an Exception, so nothing in the writer handles it."""


def _stop_after(n):
    def progress(iterable, **kw):
        for i, x in enumerate(iterable):
            if i == n:
                raise Stop
            yield x
    return progress


def _files(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}


def _same_phantom(a: Path, b: Path) -> None:
    assert _files(a) == _files(b)
    for rel in _files(a) - {MARKER}:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel
    ma, mb = (json.loads((d / MARKER).read_text()) for d in (a, b))
    assert ma == mb


def test_sigkilled_phantom_restarts_with_the_same_command(tmp_path, capsys):
    out = tmp_path / "p"
    proc = subprocess.run([sys.executable, "-c", KILLED, *ARGS, "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert (out / PARTIAL).is_file() and not (out / MARKER).exists()
    assert any(p.name.endswith(".nii.gz") for p in out.rglob("*"))  # it was killed mid-write
    code, stdout, err = run_cli([*ARGS, "--out", out], capsys)
    assert code == 0, err
    assert "ct-rate phantom: " in stdout and not (out / PARTIAL).exists()
    code, _, err = run_cli([*ARGS, "--out", tmp_path / "fresh"], capsys)
    assert code == 0, err
    _same_phantom(out, tmp_path / "fresh")


def test_stopped_regeneration_keeps_foreign_files_and_drops_stale_ones(tmp_path, small):
    small = {**small, "image_size": 16}
    out = tmp_path / "p"
    write_phantom("nih-cxr-lt", out, **small)
    (out / "notes.txt").write_text("mine")
    bigger = {**small, "num_images": 90, "image_size": 24}
    with pytest.raises(Stop):
        write_phantom("nih-cxr-lt", out, **bigger, progress=_stop_after(30))
    assert (out / PARTIAL).is_file() and not (out / MARKER).exists()
    # the same command again: the stopped run's files are its own, the note is not
    write_phantom("nih-cxr-lt", out, **small)
    write_phantom("nih-cxr-lt", tmp_path / "fresh", **small)
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    _same_phantom(out, tmp_path / "fresh")


def test_stopped_twice_then_finished(tmp_path, small):
    small = {**small, "image_size": 16}
    out = tmp_path / "p"
    for n in (5, 20):
        with pytest.raises(Stop):
            write_phantom("nih-cxr-lt", out, **small, progress=_stop_after(n))
    write_phantom("nih-cxr-lt", out, **small)
    write_phantom("nih-cxr-lt", tmp_path / "fresh", **small)
    _same_phantom(out, tmp_path / "fresh")


def test_other_folders_still_refused(tmp_path, small):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "scan.png").write_bytes(b"x")
    with pytest.raises(DataError, match="not empty and holds no phantom"):
        write_phantom("nih-cxr-lt", tmp_path / "data", **small)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / PARTIAL).write_text("{")
    with pytest.raises(DataError, match=f"{PARTIAL}: unreadable phantom marker"):
        write_phantom("nih-cxr-lt", tmp_path / "bad", **small)
    assert (tmp_path / "data" / "scan.png").read_bytes() == b"x"


def test_oracle_phantom_killed_mid_write_resumes(tmp_path, nih_dir, monkeypatch):
    """build_oracle (the bench's oracle cell) stopped while writing its phantom: re-running goes on."""
    import medlt.classify.train as clf_train
    import medlt.cliutils as cu
    from medlt.classify.oracle import build_oracle
    from medlt.recipe import load_recipe

    root = Path(__file__).resolve().parents[2]
    recipe = load_recipe(root / "recipes" / "phantom" / "nih_cxr_lt.yaml",
                         [f"data.root={nih_dir.out_dir}", f"data.labels={nih_dir.out_dir}", "data.image_size=[32,32]"])
    monkeypatch.setattr(cu, "progress", lambda it, **k: _stop_after(15)(it))
    with pytest.raises(Stop):
        build_oracle(recipe, tmp_path / "oracle", per_class=3, show_progress=False)
    pdir = tmp_path / "oracle" / "phantom"
    assert (pdir / PARTIAL).is_file() and not (pdir / MARKER).exists()

    class Trained(Exception):
        pass

    def fit(*a, **k):
        raise Trained

    monkeypatch.setattr(cu, "progress", lambda it, **k: it)
    monkeypatch.setattr(clf_train, "fit_classifier", fit)
    with pytest.raises(Trained):  # the phantom is written again and training starts
        build_oracle(recipe, tmp_path / "oracle", per_class=3, show_progress=False)
    assert (pdir / MARKER).is_file() and not (pdir / PARTIAL).exists()
    assert json.loads((pdir / MARKER).read_text())["parameters"]["per_class"] == 3
