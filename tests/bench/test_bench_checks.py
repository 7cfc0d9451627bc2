"""`medlt bench` refuses bad inputs before its first cell, --dry-run included (medlt.bench.checks),
and a bench folder whose data changed since its cells ran is reported (dry run) or refused (run)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.cli_run import run_cli


def dry(recipe, out, *extra):
    return ["bench", recipe, "--out", out, "--methods", "plain", "--seeds", "0", "--classifier-seeds", "0",
            "--dry-run", *extra]


def _one_error(code, err, *needles):
    assert code != 0 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_option_values_refused_before_any_cell(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "b"
    code, so, err = run_cli(dry(tiny_recipe, out), capsys)
    assert code == 0 and "cells done" in so, err
    # resample counts below the floor of `medlt report`
    _one_error(*run_cli(dry(tiny_recipe, out, "--bootstrap-resamples", "1"), capsys)[::2],
               "--bootstrap-resamples 1: use at least 100")
    # an empty option is refused, never replaced by the default
    for opt, needle in (("--methods", "--methods: no method given"), ("--seeds", "--seeds: expected"),
                        ("--classifier-seeds", "--classifier-seeds: expected")):
        args = ["bench", tiny_recipe, "--out", out, "--dry-run", opt, ""]
        _one_error(*run_cli(args, capsys)[::2], needle)
    # one method set in two orders (medlt.bench.methods) is refused in a dry run too
    code, _, err = run_cli(["bench", tiny_recipe, "--out", out, "--methods", "plain,cbdm+ccua,ccua+cbdm",
                            "--dry-run"], capsys)
    _one_error(code, err, "--methods", "'cbdm+ccua' and 'ccua+cbdm'")
    # a quota that plans no synthetic image (every class of the tiny phantom has >= 1 training image)
    _one_error(*run_cli(dry(tiny_recipe, out, "--set", "synth.quota=to_count:1"), capsys)[::2],
               "'synth.quota': to_count:1 plans no synthetic image")
    assert not out.exists()


def test_out_must_be_a_bench_or_empty_folder(tiny_recipe, tmp_path, capsys):
    synth = tmp_path / "synth"
    synth.mkdir()
    (synth / "manifest.csv").write_text("id,image\n")
    _one_error(*run_cli(dry(tiny_recipe, synth), capsys)[::2], f"--out {synth}: folder is not empty and holds no "
               "bench", "a `medlt synth` output")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    _one_error(*run_cli(dry(tiny_recipe, other), capsys)[::2], "holds no bench", "e.g. notes.txt")
    _one_error(*run_cli(dry(tiny_recipe, other / "notes.txt"), capsys)[::2], "is a file, not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, so, err = run_cli(dry(tiny_recipe, empty), capsys)
    assert code == 0, err


def test_judge_inputs_are_loaded_before_any_cell(tiny_recipe, tmp_path, capsys):
    from medlt.classify.train import fit_classifier
    from tests.classify.conftest import make_data
    from tests.classify.conftest import tiny_recipe as tiny_clf_recipe

    fit_classifier(tiny_clf_recipe(tmp_path, epochs=1), make_data([6, 6, 6]), tmp_path / "other",
                   show_progress=False)
    out = tmp_path / "b"
    code, _, err = run_cli(dry(tiny_recipe, out, "--reference-classifier", tmp_path / "other"), capsys)
    _one_error(code, err, "--reference-classifier: reference classifier", "was trained on classes ['class0'")
    code, _, err = run_cli(dry(tiny_recipe, out, "--feature-extractor", tmp_path / "missing.pt"), capsys)
    _one_error(code, err, "--feature-extractor: file not found", "missing.pt")


def test_cpu_preset_on_a_3d_recipe_names_the_preset(capsys, tmp_path):
    code, _, err = run_cli(["bench", "recipes/phantom/ct_rate.yaml", "--preset", "cpu", "--out", tmp_path / "b",
                            "--dry-run"], capsys)
    _one_error(code, err, "--preset cpu: sized for 2D recipes (data.image_size=[32,32])", "is a 3D recipe",
               "[32, 32, 16]")


def test_table_names_the_test_split_actually_used():
    from medlt.bench.settings import table_split_label
    from medlt.recipe import load_recipe

    ct = table_split_label(load_recipe("recipes/phantom/ct_rate.yaml"))
    assert ct == "test split 'valid' (data.splits.test)" and "balanced" not in ct
    assert table_split_label(load_recipe("recipes/phantom/nih_cxr_lt.yaml")) == "balanced test split 'balanced-test'"


@pytest.fixture
def own_phantom(tiny_phantom, tmp_path):
    """A private copy of the tiny phantom (this test changes its data) and a recipe reading it."""
    from tests.bench.conftest import TINY_RECIPE

    root = tmp_path / "data"
    shutil.copytree(tiny_phantom, root)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE.format(root=root))
    return root, recipe


def test_changed_data_makes_finished_cells_stale(own_phantom, tmp_path, capsys, monkeypatch):
    """Every cell records the data fingerprint; after an image under data.root changes, --dry-run marks
    the finished cells stale and a run is refused before any cell (cells here finish instantly: the
    work of each kind is replaced, the runner's own bookkeeping is real)."""
    from medlt.bench import cells, table
    from medlt.data.fingerprint import data_fingerprint
    from medlt.recipe import load_recipe

    root, recipe = own_phantom
    for name in dir(cells.Runner):
        if name.startswith("_run_"):
            monkeypatch.setattr(cells.Runner, name, lambda self, c, say: {})
    tables = []
    monkeypatch.setattr(table, "build_table", lambda plan, judge, settings, **kw: tables.append(settings) or {})
    monkeypatch.setattr(table, "write_table", lambda out, t: {"md_text": "", "json": out / "bench.json",
                                                                  "md": "", "html": ""})
    out = tmp_path / "b"
    args = ["bench", recipe, "--out", out, "--methods", "plain", "--seeds", "0", "--classifier-seeds", "0"]
    code, so, err = run_cli(args, capsys)
    assert code == 0, err
    fp = data_fingerprint(load_recipe(recipe))
    assert json.loads((out / "bench.settings.json").read_text())["data_fingerprint"] == fp
    assert tables[0]["data_fingerprint"] == fp  # bench.json's settings carry it too
    markers = sorted(out.rglob("cell.json"))
    assert markers and all(json.loads(m.read_text())["data_fingerprint"] == fp["sha256"] for m in markers)
    code, so, err = run_cli([*args, "--dry-run"], capsys)
    assert code == 0 and "stale" not in so + err and f"{len(markers)} of {len(markers)} cells done" in so

    img = next(p for p in sorted(root.rglob("*.png")))
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten in place: a new mtime
    code, so, err = run_cli([*args, "--dry-run"], capsys)
    assert code == 0, err
    assert sum(" stale " in line for line in so.splitlines()) == len(markers)
    assert "warning: data under data.root" in err and "a run would be refused" in err
    code, so, err = run_cli(args, capsys)
    _one_error(code, err, f"data under data.root ({root}) changed since cell", "image files changed size or "
               "modification time", f"{len(markers)} finished cell(s) stale", "use a new --out")
    assert all(json.loads(m.read_text())["data_fingerprint"] == fp["sha256"] for m in markers)
