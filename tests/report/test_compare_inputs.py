"""`medlt report` on inputs it cannot compare: other medlt outputs, too few bootstrap resamples,
colliding folder names, single- vs multi-label runs."""

import json

import numpy as np
import pytest

from medlt.report.labels import run_labels
from tests.cli_run import run_cli as _run
from tests.report.test_paired import _eval_dir


@pytest.fixture(scope="module")
def bench_like(tmp_path_factory):
    """Two evaluations named "eval", as a bench writes them (real/c0/eval, plain/g0/c0/eval)."""
    tmp = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 40)
    ids = [f"img{i:03d}.png" for i in range(y.size)]
    pred = np.where(rng.random(y.size) < 0.5, y, rng.integers(0, 3, y.size))
    a = _eval_dir(tmp / "real" / "c0" / "eval", y, pred, ids)
    b = _eval_dir(tmp / "plain" / "g0" / "c0" / "eval", y, np.where(rng.random(y.size) < 0.3, y, pred), ids,
                  train_source="real+synthetic")
    return tmp, a, b


def _one_error_line(code, err):
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("content, expect", [
    ({}, "no 'label_space', 'classification', 'classifier', 'groups'"),
    ([1, 2], "the JSON is a list"),
    ({"kind": "autoencoder-reconstruction", "overall": {"psnr_db": 30.0}}, "`medlt evaluate-autoencoder` report"),
    ({"settings": {}, "rows": [], "cells": {}, "label_space": {"names": ["a"], "multi_label": False}},
     "`medlt bench` table"),
])
def test_other_json_is_one_line_naming_the_file(tmp_path, capsys, bench_like, content, expect):
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.json").write_text(json.dumps(content))
    code, out, err = _run(["report", bench_like[1], other], capsys)
    line = _one_error_line(code, err)
    assert str(other / "report.json") in line and "not a `medlt evaluate` report" in line and expect in line
    assert out == ""


def test_json_file_given_directly_is_checked_too(tmp_path, capsys):
    f = tmp_path / "bench.json"
    f.write_text(json.dumps({"settings": {}, "rows": [], "cells": {}}))
    line = _one_error_line(*_run(["report", f], capsys)[::2])
    assert str(f) in line and "`medlt bench` table" in line


def test_bench_folder_points_at_its_cells(tmp_path, capsys, bench_like):
    (tmp_path / "bench.json").write_text("{}")
    line = _one_error_line(*_run(["report", tmp_path, bench_like[1]], capsys)[::2])
    assert line.startswith(f"error: {tmp_path}: a `medlt bench` folder") and "eval/" in line


@pytest.mark.parametrize("n", ["1", "99", "0", "-5"])
def test_too_few_bootstrap_resamples_refused(capsys, bench_like, n):
    _, a, b = bench_like
    line = _one_error_line(*_run(["report", a, b, "--bootstrap-resamples", n], capsys)[::2])
    assert f"--bootstrap-resamples {n}" in line and "at least 100" in line


def test_refused_before_reading_the_folders(tmp_path, capsys):
    line = _one_error_line(*_run(["report", tmp_path / "nope", "--bootstrap-resamples", "1"], capsys)[::2])
    assert "--bootstrap-resamples" in line


def test_colliding_folder_names_get_distinct_labels(capsys, bench_like):
    _, a, b = bench_like
    code, out, err = _run(["report", a, b, "--bootstrap-resamples", "100"], capsys)
    assert code == 0, err
    rows = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert any(ln.startswith("| real/c0/eval | real |") for ln in rows)
    assert any(ln.startswith("| g0/c0/eval | real+synthetic |") for ln in rows)
    assert "Paired differences against real/c0/eval" in out
    assert any(ln.startswith("| g0/c0/eval | test (balanced-test) | balanced accuracy |") for ln in rows)
    assert not any(ln.startswith("| eval |") for ln in rows)


def test_run_labels(tmp_path):
    for d in ("b/real/c0/eval", "b/plain/g0/c0/eval", "b/cbdm/g0/c0/eval", "x/run1", "y/run2"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "x" / "run1" / "report.json").write_text("{}")
    got = run_labels([tmp_path / "b/real/c0/eval", tmp_path / "b/plain/g0/c0/eval", tmp_path / "b/cbdm/g0/c0/eval",
                      tmp_path / "x/run1/report.json", tmp_path / "y/run2"])
    assert got == ["real/c0/eval", "plain/g0/c0/eval", "cbdm/g0/c0/eval", "run1", "run2"]
    twice = run_labels([tmp_path / "y/run2", tmp_path / "y/run2"])
    assert twice == [str((tmp_path / "y/run2").resolve()), f"{(tmp_path / 'y/run2').resolve()} (2)"]
    assert len(set(twice)) == 2


def test_single_vs_multi_label_pair_is_one_clear_line(tmp_path, capsys, bench_like):
    _, a, _ = bench_like
    multi = tmp_path / "multi"
    multi.mkdir()
    rep = json.loads((a / "report.json").read_text())
    rep["label_space"]["multi_label"] = True
    (multi / "report.json").write_text(json.dumps(rep))
    line = _one_error_line(*_run(["report", a, multi], capsys)[::2])
    assert str(multi) in line and "multi-label" in line and "single-label" in line and "cannot be compared" in line
    assert "missing columns" not in line


@pytest.mark.parametrize("n", ["99", "-5"])
def test_too_few_bootstrap_resamples_is_a_usage_error(capsys, bench_like, n):
    _, a, b = bench_like
    code, _, err = _run(["report", a, b, "--bootstrap-resamples", n], capsys)
    assert code == 2, err  # a command-line value, as click's own usage errors


def test_the_same_run_twice_is_refused(capsys, bench_like):
    _, a, b = bench_like
    code, out, err = _run(["report", a, a], capsys)
    line = _one_error_line(code, err)
    assert code == 2 and f"{a} is given twice" in line and out == ""
    code, out, err = _run(["report", a, b, a / "report.json"], capsys)
    line = _one_error_line(code, err)
    assert code == 2 and f"{a} and {a / 'report.json'} are the same run" in line and out == ""


def test_negative_seed_is_a_usage_error(capsys, bench_like):
    _, a, b = bench_like
    code, out, err = _run(["report", a, b, "--seed", "-1"], capsys)
    line = _one_error_line(code, err)
    assert code == 2 and "--seed" in line and out == ""
