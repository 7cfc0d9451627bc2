"""Resuming and guarding a bench folder: benches older than a setting resume as they were started,
one bench per folder at a time (OUT/.lock), --out must be writable (also in --dry-run), a resumed
cell's wall time sums its attempts, and command-line values that a bench would replace or cannot
read are refused with exit 2. Cells finish instantly here (the work of each kind is replaced; the
runner's own bookkeeping is real)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil

import pytest

from tests.cli_run import run_cli


@pytest.fixture
def instant_cells(monkeypatch):
    from medlt.bench import cells, table

    for name in dir(cells.Runner):
        if name.startswith("_run_"):
            monkeypatch.setattr(cells.Runner, name, lambda self, c, say: {})
    monkeypatch.setattr(table, "build_table", lambda plan, judge, settings, **kw: {})
    monkeypatch.setattr(table, "write_table", lambda out, t: {"md_text": "", "json": out / "bench.json",
                                                                  "md": "", "html": ""})
    return cells


def args(recipe, out, *extra):
    return ["bench", recipe, "--out", out, "--methods", "plain", "--seeds", "0", "--classifier-seeds", "0", *extra]


def one_line(code, err, exit_code, *needles):
    assert code == exit_code and "Traceback" not in err, (code, err)
    assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_a_bench_older_than_the_ideal_arm_and_judge_cell_resumes(tiny_recipe, tmp_path, capsys, instant_cells):
    out = tmp_path / "b"
    code, _, err = run_cli(args(tiny_recipe, out), capsys)
    assert code == 0, err
    # as written before the ideal arm and the real-data judge existed: no such keys, no ideal cells
    f = out / "bench.settings.json"
    d = json.loads(f.read_text())
    del d["settings"]["ideal_arm"], d["settings"]["judge_cell"]
    f.write_text(json.dumps(d))
    shutil.rmtree(out / "ideal")
    code, so, err = run_cli([*args(tiny_recipe, out), "--dry-run"], capsys)
    assert code == 0, err
    # as it was started: oracle, real, copies, plain g0 and its classifier; no ideal cell
    assert "ideal" not in so and "5 of 5 cells done" in so
    code, so, err = run_cli(args(tiny_recipe, out), capsys)
    assert code == 0, err
    assert not (out / "ideal").exists()
    s = json.loads(f.read_text())["settings"]
    assert s["ideal_arm"] is False and s["judge_cell"] is False


def test_a_bench_older_than_new_recipe_keys_resumes_and_a_real_change_is_still_refused(
        tiny_recipe, tmp_path, capsys, instant_cells):
    out = tmp_path / "b"
    code, _, err = run_cli(args(tiny_recipe, out), capsys)
    assert code == 0, err
    # as written by a medlt whose schema lacked these keys (added later, at their defaults)
    f = out / "bench.settings.json"
    d = json.loads(f.read_text())
    del d["recipe"]["classifier"]["threshold"], d["recipe"]["classifier"]["weight_decay"]
    f.write_text(json.dumps(d))
    code, _, err = run_cli(args(tiny_recipe, out), capsys)
    assert code == 0, err
    code, _, err = run_cli([*args(tiny_recipe, out), "--set", "classifier.threshold=0.3"], capsys)
    one_line(code, err, 2, "another recipe", "classifier.threshold")


def test_one_bench_per_folder_at_a_time(tiny_recipe, tmp_path, capsys, instant_cells):
    out = tmp_path / "b"
    assert run_cli(args(tiny_recipe, out), capsys)[0] == 0
    with open(out / ".lock", "a") as held:  # another bench is running in OUT
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = run_cli(args(tiny_recipe, out, "--methods", "plain,cbdm"), capsys)
        one_line(code, err, 1, f"--out {out}: another `medlt bench` is running in this folder")
    assert not (out / "cbdm").exists()
    code, _, err = run_cli(args(tiny_recipe, out, "--methods", "plain,cbdm"), capsys)  # released: runs
    assert code == 0, err
    # a folder that holds only a lock file (a bench stopped before its settings) is still a bench folder
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".lock").write_text("")
    assert run_cli([*args(tiny_recipe, fresh), "--dry-run"], capsys)[0] == 0


def _unwritable(folder: str) -> bool:
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return os.path.isdir(folder)
    os.close(fd)
    os.unlink(name)
    return False


@pytest.mark.skipif(not _unwritable("/sys"), reason="needs a folder nobody can write in (sysfs)")
def test_dry_run_refuses_an_unwritable_out(tiny_recipe, capsys):
    out = "/sys/medlt-bench-test"  # sysfs: no file can be created there, not even by root
    code, _, err = run_cli([*args(tiny_recipe, out), "--dry-run"], capsys)
    one_line(code, err, 1, f"--out {out}: cannot write in /sys")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_dry_run_refuses_a_read_only_out(tiny_recipe, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run_cli([*args(tiny_recipe, ro / "b"), "--dry-run"], capsys)
    finally:
        ro.chmod(0o755)
    one_line(code, err, 1, "cannot write in")


def test_a_resumed_cell_counts_the_wall_time_of_every_attempt(tiny_recipe, tmp_path, capsys, instant_cells,
                                                               monkeypatch):
    from medlt.errors import MedltError

    clock = iter(range(0, 10_000, 10))  # every reading of the runner's clock is 10 s after the last
    monkeypatch.setattr(instant_cells.time, "perf_counter", lambda: float(next(clock)))
    calls = []

    def real_cell(self, c, say):
        calls.append(c)
        if len(calls) == 1:
            raise MedltError("stopped")  # the first attempt stops
        return {}

    monkeypatch.setattr(instant_cells.Runner, "_run_real", real_cell)
    out = tmp_path / "b"
    assert run_cli(args(tiny_recipe, out), capsys)[0] == 1
    assert run_cli(args(tiny_recipe, out), capsys)[0] == 0
    rec = json.loads((out / "real" / "c0" / "cell.json").read_text())
    assert rec["wall_s"] == 20.0 and rec["attempts"] == 2 and rec["wall_s_last_attempt"] == 10.0
    assert not (out / "real" / "c0" / "attempts.json").exists()


@pytest.mark.parametrize("extra, needles", [
    # every method sets regularizers:, so a --set of it would be replaced silently
    (["--set", "regularizers=[{name: cbdm, weight: 0.3}]"], ["--set regularizers", "--methods"]),
    (["--set", "regularizers[0].weight=0.3"], ["--set regularizers[0].weight"]),
    (["--methods", "plain,"], ["--methods 'plain,': an empty item"]),
    (["--methods", "plain,,cbdm"], ["--methods 'plain,,cbdm': an empty item"]),
    (["--methods", ",plain"], ["an empty item"]),
    (["--methods", "cbdm(tau=0.5,tau=0.7)"], ["'tau' is given twice"]),  # the last value won silently
    (["--seeds", "0,,1"], ["--seeds '0,,1': an empty item"]),
    (["--classifier-seeds", "0,"], ["--classifier-seeds '0,': an empty item"]),
    (["--bootstrap-resamples", "5"], ["--bootstrap-resamples 5"]),  # a range error: exit 2, not 1
])
def test_command_line_values_a_bench_cannot_honour_exit_2(tiny_recipe, tmp_path, capsys, extra, needles):
    out = tmp_path / "b"
    one_line(*run_cli([*args(tiny_recipe, out), "--dry-run", *extra], capsys)[::2], 2, *needles)
    assert not out.exists()


def test_bench_help_names_the_default_judge(capsys):
    code, so, _ = run_cli(["bench", "--help"], capsys)
    text = " ".join(so.replace("│", " ").split())
    assert code == 0
    assert "real-only classifier of the first classifier seed" not in text
    assert "DIR/judge" in text and "class-balanced" in text
