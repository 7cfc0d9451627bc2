"""`medlt bench` end to end on a tiny phantom: cells, table = the cells' report.json, resume."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from medlt.bench.table import METRICS, cell_metrics
from tests.cli_run import run_cli


def bench_args(recipe, out, *extra):
    return ["bench", recipe, "--out", out, "--methods", "plain,cbdm", "--seeds", "0", "--classifier-seeds", "0",
            "--oracle-per-class", "2", "--probe-per-class", "2", "--bootstrap-resamples", "100",
            # random augmentation on, so a redone classifier cell is only equal when its RNG is its own
            "--set", "classifier.augment_rotation_deg=15", *extra]


def by_cell_metrics(t: dict, cell: str, key: str = "bacc_all") -> float:
    return next(c for c in t["cells"] if c["cell"] == cell)["metrics"][key]


def started(out) -> list[str]:
    return [line.split()[2] for line in (out / "bench.log").read_text().splitlines() if line.split()[1] == "start"]


@pytest.mark.slow
def test_tiny_bench_end_to_end_table_equals_reports_and_resume(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "b"
    code, so, se = run_cli(bench_args(tiny_recipe, out), capsys)
    assert code == 0, se
    assert re.search(r"cell 6/9 plain seed 0: train \(3 steps\)", se)
    cells = ["oracle", "real/c0", "copies/c0", "ideal/set", "ideal/c0", "plain/g0", "plain/g0/c0", "cbdm/g0",
             "cbdm/g0/c0"]
    assert started(out) == cells
    for f in ("bench.json", "bench.md", "bench.html"):
        assert (out / f).is_file()
    html = (out / "bench.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html
    t = json.loads((out / "bench.json").read_text())
    assert [r["method"] for r in t["rows"]] == ["real", "copies", "ideal", "plain", "cbdm"]
    # headroom (ideal - copies) and each method's share of it; cbdm vs plain; scopes say how many classes entered
    hd = t["headroom"]["headline"]
    assert hd["difference"] == pytest.approx(by_cell_metrics(t, "ideal/c0") - by_cell_metrics(t, "copies/c0"))
    rows = {r["method"]: r for r in t["rows"]}
    sh = rows["plain"]["share_of_headroom"]["headline"]
    assert sh["shown"] == (hd["interval"][0] > 0) and (sh["share"] is None) == (not sh["shown"])
    assert rows["cbdm"]["delta_bacc_vs_plain"]["all"]["mean_paired_difference"]["difference"] == pytest.approx(
        by_cell_metrics(t, "cbdm/g0/c0") - by_cell_metrics(t, "plain/g0/c0"))
    assert "delta_bacc_vs_plain" not in rows["plain"] and "share_of_headroom" not in rows["ideal"]
    md = (out / "bench.md").read_text()
    assert re.search(r"FID tail", md) and re.search(r"\(\d+/\d+\)", md) and "Headroom" in md
    assert "judge recall on real test images" in md
    n_tail = t["groups"].count("tail")
    assert all(e[1] == n_tail for e in rows["plain"]["classes_entered"]["fid_tail"])
    # the judge sees the ideal set too: its fidelity is the judge's ceiling on perfect samples
    assert rows["ideal"]["metrics"]["fidelity_all"]["mean"] is not None
    assert set(t["judge"]["real_recall_per_class"]) == set(t["label_space"]["names"])
    rep_ideal = json.loads((out / "ideal" / "c0" / "eval" / "report.json").read_text())
    assert rep_ideal["generation"]["class_fidelity"]["reference_classifier"]["source"].startswith("medlt bench: phantom")

    # every per-cell number is the one in that cell's report.json
    ext = t["judge"]["feature_extractor_name"]
    assert ext.startswith("classifier:resnet18-2d[train=phantom-oracle]@")
    for c in t["cells"]:
        if "report" not in c:
            continue
        rep = json.loads((out / c["report"]).read_text())
        assert c["metrics"] == json.loads(json.dumps(cell_metrics(rep, ext)))
        assert c["metrics"]["bacc_all"] == rep["classification"]["test"]["balanced_accuracy"]
        assert c["metrics"]["bacc_tail"] == rep["classification"]["test"]["group_mean_recall"]["tail"]
        if c["kind"] == "classifier":
            gen = rep["generation"]
            assert c["metrics"]["fidelity_all"] == gen["class_fidelity"]["mean_class_fidelity"]
            assert c["metrics"]["fidelity_head"] == gen["class_fidelity"]["group_mean_fidelity"]["head"]
            assert c["metrics"]["cas"] == gen["cas"]["balanced_accuracy"]
            by = gen["by_extractor"][ext]
            assert c["metrics"]["fid_overall"] == by["fid_kid"]["scopes"]["overall"]["fid"]
            assert c["metrics"]["memorization_rate"] == by["memorization"]["overall"]["flagged_rate"]
            # one judge and one extractor for every cell: the oracle
            assert gen["class_fidelity"]["reference_classifier"]["checkpoint"].startswith(str(out / "oracle"))
            assert gen["feature_extractors"][0]["source"].startswith(str(out / "oracle"))
            # the probe: every class judged, head included, 2 images each
            assert all(v["n_synthetic"] == 2 for v in gen["class_fidelity"]["per_class"].values())
    by_cell = {c["cell"]: c for c in t["cells"]}
    for row in t["rows"]:
        for key, _ in METRICS:
            vals = [by_cell[c]["metrics"][key] for c in row["cells"] if by_cell[c]["metrics"][key] is not None]
            agg = row["metrics"][key]
            assert agg["n"] == len(vals)
            assert agg["mean"] == (pytest.approx(np.mean(vals)) if vals else None)
        if row["method"] != "real":
            d = row["delta_bacc_vs_real"]["all"]
            a = by_cell["real/c0"]["metrics"]["bacc_all"]
            b = by_cell[row["cells"][0]]["metrics"]["bacc_all"]
            assert d["mean_paired_difference"]["difference"] == pytest.approx(b - a)
            assert d["mean"] == pytest.approx(b - a)
    gen_row = next(r for r in t["rows"] if r["method"] == "cbdm")
    assert gen_row["generator_steps"] == [3]
    # the cbdm generator was trained with CBDM only; plain with none
    rs = json.loads((out / "cbdm" / "g0" / "c0" / "eval" / "report.json").read_text())["recipe"]["regularizers"]
    assert [r["name"] for r in rs] == ["cbdm"]

    # copies control: as many copies per class as the synthetic set adds, pointing at real files
    plan = json.loads((out / "plain" / "g0" / "synth" / "plan.json").read_text())
    copies = pd.read_csv(out / "copies" / "c0" / "copies.csv")
    names = t["label_space"]["names"]
    cp = copies[copies["source"] == "copy"]
    added = {c["name"]: c["to_generate"] for c in plan["classes"]}
    assert {n: int(cp[n].sum()) for n in names} == added
    real_train = copies[(copies["source"] == "real") & (copies["split"] == "train")]
    assert set(cp["image"]) <= set(real_train["image"])
    assert len(cp) == sum(added.values()) == by_cell["copies/c0"]["copies"]

    # resume: a cell whose done marker is gone (killed before its end) is the only one redone
    marks = {c: (out / c / "cell.json").stat().st_mtime_ns for c in cells}
    (out / "plain" / "g0" / "c0" / "cell.json").unlink()
    (out / "cbdm" / "g0" / "cell.json").unlink()  # a generator: resumed through train --resume / synth
    code, so, se = run_cli(bench_args(tiny_recipe, out, "--dry-run"), capsys)
    assert code == 0 and "7 of 9 cells done" in so and re.search(r"to do\s+plain seed 0 classifier seed 0", so)
    before = (out / "plain" / "g0" / "c0" / "eval" / "predictions_test.csv").read_text()
    before_rep = json.loads((out / "plain" / "g0" / "c0" / "eval" / "report.json").read_text())
    code, so, se = run_cli(bench_args(tiny_recipe, out), capsys)
    assert code == 0, se
    assert started(out)[len(cells):] == ["plain/g0/c0", "cbdm/g0"]  # plan order
    for c in cells:
        changed = (out / c / "cell.json").stat().st_mtime_ns != marks[c]
        assert changed == (c in ("plain/g0/c0", "cbdm/g0")), c
    assert json.loads((out / "cbdm" / "g0" / "cell.json").read_text())["resumed"] is True
    # the redone classifier cell equals the uninterrupted one (its data order and augmentation are
    # seeded by the cell, not by what ran before it in the process)
    assert (out / "plain" / "g0" / "c0" / "eval" / "predictions_test.csv").read_text() == before
    after_rep = json.loads((out / "plain" / "g0" / "c0" / "eval" / "report.json").read_text())
    assert after_rep["classification"]["test"] == before_rep["classification"]["test"]

    # a changed recipe is refused for that folder
    code, so, se = run_cli(bench_args(tiny_recipe, out, "--set", "training.lr=0.01"), capsys)
    assert code != 0 and "training.lr" in se and "another recipe" in se
