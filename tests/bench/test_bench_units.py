"""Fast checks of the bench's pieces: method names, aggregation, seed-averaged paired intervals,
the copies control manifest, the CLI's dry run and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlt.bench.methods import method_regularizers, parse_methods, parse_seeds
from medlt.bench.paired_mean import mean_paired_difference
from medlt.bench.table import aggregate
from medlt.data.labels import LabelSpace
from medlt.errors import RecipeError, UsageError
from medlt.metrics.bootstrap import paired_difference
from tests.cli_run import run_cli as _cli


def test_methods_map_to_regularizers_and_combine():
    assert method_regularizers("plain") == []
    assert [r["name"] for r in method_regularizers("cbdm+ccua")] == ["cbdm", "ccua"]
    assert method_regularizers("overlap")[0]["weight"] == 0.1
    assert parse_methods("plain, cbdm ,cbdm+overlap") == ["plain", "cbdm", "cbdm+overlap"]
    with pytest.raises(RecipeError, match="did you mean 'cbdm'"):
        parse_methods("plain,cbdn")
    with pytest.raises(RecipeError, match="listed twice"):
        parse_methods("cbdm,cbdm")
    with pytest.raises(RecipeError, match="control"):
        parse_methods("real")
    with pytest.raises(RecipeError, match="cannot be combined"):
        parse_methods("plain+cbdm")
    assert parse_seeds("0,1,2") == [0, 1, 2]
    with pytest.raises(UsageError, match="--seeds"):  # a command-line value: exit 2
        parse_seeds("0,x")
    # the registry's entries are copied, never shared with a recipe that could edit them
    method_regularizers("cbdm")[0]["options"]["tau"] = 9
    assert method_regularizers("cbdm")[0]["options"]["tau"] == 1.0


def test_aggregate_spreads_over_generator_and_classifier_seeds():
    grid = {0: {0: 0.1, 1: 0.3}, 1: {0: 0.5, 1: 0.9}}
    a = aggregate(grid)
    assert a["mean"] == pytest.approx(0.45) and a["n"] == 4
    assert a["sd_generator_seeds"] == pytest.approx(np.std([0.2, 0.7], ddof=1))
    assert a["sd_classifier_seeds"] == pytest.approx(np.mean([np.std([0.1, 0.3], ddof=1), np.std([0.5, 0.9], ddof=1)]))
    one = aggregate({-1: {0: 0.2}})
    assert one == {"mean": 0.2, "n": 1, "sd_generator_seeds": None, "sd_classifier_seeds": None}
    assert aggregate({0: {0: None}})["mean"] is None


def _preds(rng, true, acc):
    p = true.copy()
    flip = rng.random(true.size) > acc
    p[flip] = rng.integers(0, 4, flip.sum())
    return {"true": true, "predicted": p}


def test_mean_paired_difference_one_pair_equals_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(4), 25)
    a, b = _preds(rng, true, 0.5), _preds(rng, true, 0.8)
    ls = LabelSpace(("a", "b", "c", "d"), False)
    groups = ["head", "head", "medium", "tail"]
    m = mean_paired_difference([(a, b)], ls, groups, n_resamples=200, seed=3)
    ref = paired_difference(true, a["predicted"], b["predicted"], groups, num_classes=4, n_resamples=200, seed=3)
    assert m["headline"]["difference"] == pytest.approx(ref["balanced_accuracy"]["difference"])
    assert m["headline"]["interval"] == pytest.approx(ref["balanced_accuracy"]["interval"])
    assert m["tail"]["interval"] == pytest.approx(ref["group_mean_recall"]["tail"]["interval"])
    # two pairs: the point value is the mean of the two differences
    c, d = _preds(rng, true, 0.6), _preds(rng, true, 0.6)
    two = mean_paired_difference([(a, b), (c, d)], ls, groups, n_resamples=200, seed=3)
    d2 = paired_difference(true, c["predicted"], d["predicted"], groups, num_classes=4, n_resamples=10, seed=3)
    assert two["headline"]["difference"] == pytest.approx(
        (ref["balanced_accuracy"]["difference"] + d2["balanced_accuracy"]["difference"]) / 2)
    assert two["n_pairs"] == 2
    with pytest.raises(ValueError, match="same test images"):
        mean_paired_difference([(a, {"true": true[::-1], "predicted": b["predicted"]})], ls, groups)


def test_copies_manifest_counts_and_loader(tiny_recipe, tmp_path):
    from medlt.bench.copies import write_copies_manifest
    from medlt.classify.data import recipe_for_train_manifest
    from medlt.cliutils import load_recipe_cli
    from medlt.data.table import load_table
    from medlt.synth.generate import make_plan

    r = load_recipe_cli(tiny_recipe, [])
    table = load_table(r)
    path = write_copies_manifest(r, table, tmp_path)
    df = pd.read_csv(path)
    plan = make_plan(r, table)
    cp = df[df["source"] == "copy"]
    names = list(table.label_space.names)
    assert {n: int(cp[n].sum()) for n in names} == {c.name: c.to_generate for c in plan.classes}
    assert len(cp) == len(plan.jobs) > 0 and (cp["split"] == "train").all() and (cp["root"] == "data").all()
    # copies point at real training files of their own class; spread evenly over them
    real = df[df["source"] == "real"]
    lab = {row["image"]: tuple(row[names]) for _, row in real.iterrows()}
    assert all(lab[row["image"]] == tuple(row[names]) for _, row in cp.iterrows())
    for n in names:
        per = cp[cp[n] == 1]["image"].value_counts()
        n_real = int(((real[n] == 1) & (real["split"] == "train")).sum())
        if len(per) and len(cp[cp[n] == 1]) >= n_real:
            assert len(per) == n_real and per.max() - per.min() <= 1
        elif len(per):
            assert per.max() == 1
    assert not df["id"].duplicated().any()
    assert (tmp_path / "copies.root.txt").read_text().strip() == str(Path(r.data.root).resolve())
    # the data loader reads it: the training table = real training rows + the copies
    t2 = load_table(recipe_for_train_manifest(r, path))
    tr = t2.frame[t2.frame["split"] == r.data.splits.train]
    assert len(tr) == int((df["split"] == "train").sum())
    assert t2.class_counts("train") == [a + b for a, b in zip(table.class_counts("train"),
                                                               [c.to_generate for c in plan.classes], strict=True)]




def test_bench_dry_run_lists_cells_and_errors_are_one_line(tiny_recipe, tmp_path, capsys):
    code, out, err = _cli(["bench", tiny_recipe, "--out", tmp_path / "b", "--methods", "plain,cbdm+ccua", "--seeds",
                           "0,1", "--classifier-seeds", "0,1", "--dry-run"], capsys)
    assert code == 0, err
    lines = [line for line in out.splitlines() if "/20 " in line]
    # oracle + (real, copies) x 2 + ideal set + ideal x 2 + 2 seeds x 2 methods x (generator + 2 classifiers)
    assert len(lines) == 20 and "0 of 20 cells done" in out
    assert [line.split()[-1] for line in lines[:8]] == ["oracle", "real/c0", "copies/c0", "real/c1", "copies/c1",
                                                         "ideal/set", "ideal/c0", "ideal/c1"]
    assert "cbdm+ccua seed 1 classifier seed 1" in lines[-1] and lines[-1].rstrip().endswith("cbdm+ccua/g1/c1")
    assert not (tmp_path / "b").exists()  # a dry run writes nothing
    code, out, err = _cli(["bench", tiny_recipe, "--out", tmp_path / "b", "--methods", "plian", "--dry-run"], capsys)
    assert code != 0 and "did you mean 'plain'" in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli(["bench", tiny_recipe, "--out", tmp_path / "b", "--preset", "tpu"], capsys)
    assert code != 0 and "unknown preset 'tpu'" in err
    code, out, err = _cli(["bench", "--help"], capsys)
    assert code == 0 and "copies control" in out


def test_one_judge_per_bench(tmp_path):
    from medlt.bench.cells import Runner, plan_cells

    oracle = Runner(None, plan_cells(tmp_path, ["plain"], [0], [3, 4], use_oracle=True)).judge()
    assert (oracle.kind, oracle.reference, oracle.extractor) == ("phantom-oracle", tmp_path / "oracle",
                                                                 tmp_path / "oracle")
    given = Runner(None, plan_cells(tmp_path, ["plain"], [0], [3], use_oracle=False), reference=tmp_path / "ref",
                   feature_extractor=tmp_path / "ext.pt").judge()
    assert (given.kind, given.reference, given.extractor) == ("reference-classifier", tmp_path / "ref",
                                                              tmp_path / "ext.pt")
    fallback = Runner(None, plan_cells(tmp_path, ["plain"], [0], [3, 4], use_oracle=False)).judge()
    assert fallback.kind == "real-only-classifier" and fallback.reference == tmp_path / "real" / "c3" / "classifier"
    balanced = Runner(None, plan_cells(tmp_path, ["plain"], [0], [3], use_oracle=False, judge_cell=True)).judge()
    assert balanced.kind == "real-balanced-classifier" and balanced.reference == tmp_path / "judge"
    assert "class-balanced" in balanced.source and balanced.trained_on_compared_images and not oracle.trained_on_compared_images
    assert "--reference-classifier" in given.source and "oracle" in oracle.source
    p = plan_cells(tmp_path, ["plain"], [0], [3], use_oracle=False, judge_cell=True)
    assert [c.kind for c in p.cells[:3]] == ["judge", "real", "copies"]
    p = plan_cells(tmp_path, ["plain", "cbdm"], [0, 1], [3], use_oracle=False)
    # controls first (the fallback judge exists before any method cell), then generator, its classifiers
    assert [c.kind for c in p.cells[:4]] == ["real", "copies", "generator", "classifier"]


def test_dry_run_lists_the_resolved_preset_keys(tiny_recipe, tmp_path, capsys):
    from medlt.bench.settings import resolved_sets
    from medlt.cliutils import load_recipe_cli

    r = load_recipe_cli(tiny_recipe, ["classifier.epochs=7", "training.max_steps=3", "classifier.epochs=9"])
    assert resolved_sets(r, ["classifier.epochs=7", "training.max_steps=3", "classifier.epochs=9"]) == [
        "classifier.epochs=9", "training.max_steps=3"]  # the later --set wins, as in the recipe
    code, out, err = _cli(["bench", tiny_recipe, "--out", tmp_path / "b", "--preset", "cpu", "--set",
                           "classifier.epochs=3", "--methods", "plain", "--seeds", "0", "--dry-run"], capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("recipe keys set by --preset cpu"))
    assert "classifier.epochs=3" in line and "training.max_steps=" in line and "data.image_size=[32, 32]" in line


# ---------------------------------------------------------------------------------------------
# the table from a finished bench written by hand: cell.json markers, report.json, per-image predictions

NAMES = ("a", "b", "c", "d")
GROUPS4 = ["head", "head", "medium", "tail"]


def _write_eval(d: Path, true, pred, *, judge_recall=None, judge_min=0.5) -> None:
    """d/eval/report.json and predictions_test.csv of one classifier cell (single-label, 4 classes)."""
    import json

    from medlt.classify.predictions import write_predictions
    from medlt.metrics.classification import single_label_report
    from medlt.metrics.fidelity import class_fidelity_single_label, mark_judge_recall

    ls = LabelSpace(NAMES, False)
    ev = d / "eval"
    ev.mkdir(parents=True)
    write_predictions(ev, "test", ls, true, np.eye(4)[pred], [f"img{i}" for i in range(len(true))])
    rep = {"label_space": {"names": list(NAMES), "multi_label": False}, "groups": GROUPS4,
           "train_class_counts": [40, 30, 10, 2],
           "recipe": {"classifier": {"threshold": 0.5}, "evaluate": {"judge_min_real_recall": judge_min}},
           "classification": {"test": single_label_report(true, pred, 4, GROUPS4)}}
    if judge_recall is not None:
        fid = class_fidelity_single_label(true, pred, list(NAMES), GROUPS4)
        rep["generation"] = {"class_fidelity": mark_judge_recall(fid, judge_recall, list(NAMES), GROUPS4, judge_min)}
    (ev / "report.json").write_text(json.dumps(rep))


def fake_bench(out: Path, *, seeds=(0,), classifier_seeds=(0,), judge_min=0.5, acc=None, ideal=False):
    """A finished bench plan (method 'plain') whose cells' predictions come from acc(cell, k, g) -> accuracy."""
    import json

    from medlt.bench.cells import plan_cells

    plan = plan_cells(out, ["plain"], list(seeds), list(classifier_seeds), use_oracle=False, ideal=ideal)
    true = np.repeat(np.arange(4), 20)
    acc = acc or (lambda kind, k, g: {"real": 0.6, "copies": 0.65, "ideal": 0.9}.get(kind, 0.75))
    recall = {"a": 0.9, "b": 0.8, "c": 0.6, "d": 0.2}
    for c in plan.cells:
        c.dir.mkdir(parents=True, exist_ok=True)
        if c.kind in ("real", "copies", "ideal", "classifier"):
            rng = np.random.default_rng(1000 * (c.clf_seed or 0) + 10 * (c.gen_seed or 0) + len(c.kind))
            pred = true.copy()
            flip = rng.random(true.size) > acc(c.kind, c.clf_seed, c.gen_seed)
            pred[flip] = (true[flip] + rng.integers(1, 4, flip.sum())) % 4
            judged = c.kind == "classifier" and c.clf_seed == classifier_seeds[0]
            _write_eval(c.dir, true, pred, judge_recall=recall if judged else None, judge_min=judge_min)
        c.marker.write_text(json.dumps({"cell": str(c.dir.relative_to(out)), "kind": c.kind, "wall_s": 1.0,
                                        "generator_steps": 3}))
    return plan


def _table(plan, **kw):
    from medlt.bench.cells import Judge
    from medlt.bench.table import build_table, write_table

    settings = {"recipe_file": "r.yaml", "methods": plan.methods, "seeds": plan.seeds,
                "classifier_seeds": plan.classifier_seeds}
    t = build_table(plan, Judge(plan.out / "ref", plan.out / "ref", "reference-classifier"), settings,
                    n_resamples=200, seed=0, **kw)
    paths = write_table(plan.out, t)
    return t, paths["md_text"]


def test_judge_min_real_recall_zero_keeps_every_class_in_the_table(tmp_path):
    """evaluate.judge_min_real_recall: 0 keeps every class; the table must not read it as 0.5."""
    t, md = _table(fake_bench(tmp_path / "b", judge_min=0.0))
    assert t["judge"]["min_real_recall"] == 0.0
    assert t["judge"]["classes_it_cannot_recognise"] == []  # d (recall 0.2) was kept by evaluate
    assert "below 0 (none)" in md and "below 0.5" not in md
    t, md = _table(fake_bench(tmp_path / "c", judge_min=0.5))
    assert t["judge"]["min_real_recall"] == 0.5 and t["judge"]["classes_it_cannot_recognise"] == ["d"]


def test_table_shows_seed_inclusive_intervals_and_each_seed_pairs_delta(tmp_path):
    # two generator seeds that differ widely: the seed-inclusive interval must be wider than the test-image one
    plan = fake_bench(tmp_path / "b", seeds=(0, 1), classifier_seeds=(0, 1),
                      acc=lambda kind, k, g: {"real": 0.6, "copies": 0.6}.get(kind, 0.95 if g == 0 else 0.55))
    t, md = _table(plan)
    row = next(r for r in t["rows"] if r["method"] == "plain")
    d = row["delta_bacc_vs_real"]
    e = d["all"]["mean_paired_difference"]
    ti, si = e["interval"], e["interval_seeds_and_test_images"]
    assert si[1] - si[0] > ti[1] - ti[0]
    # every seed pair's Δ is listed, and it is the difference of the two cells' bAcc
    bacc = {c["cell"]: c["metrics"]["bacc_all"] for c in t["cells"] if "metrics" in c}
    got = {(p["generator_seed"], p["classifier_seed"]): p["all"] for p in d["per_seed_pair"]}
    assert got == {(g, k): pytest.approx(bacc[f"plain/g{g}/c{k}"] - bacc[f"real/c{k}"]) for g in (0, 1)
                   for k in (0, 1)}
    assert e["per_pair"] == pytest.approx([got[(g, k)] for g in (0, 1) for k in (0, 1)])
    assert "95% CI, seeds + test images" in md and "95% CI, test images" in md
    assert "Δ bAcc per seed pair" in md and f"g1 c0: {got[(1, 0)]:+.3f}" in md
    line = [x for x in md.splitlines() if x.startswith("| plain |")][1]  # the downstream table's row
    assert f"[{si[0]:+.3f}, {si[1]:+.3f}]" in line and f"[{ti[0]:+.3f}, {ti[1]:+.3f}]" in line
    # one seed pair: no seed noise to measure, shown as –
    t1, _ = _table(fake_bench(tmp_path / "one"))
    e1 = next(r for r in t1["rows"] if r["method"] == "plain")["delta_bacc_vs_real"]["all"]["mean_paired_difference"]
    assert e1["interval"] is not None and e1["interval_seeds_and_test_images"] is None


def test_multi_label_table_takes_the_judges_real_auroc_as_ceiling():
    from medlt.bench.table import cell_metrics, judge_summary
    from medlt.metrics.fidelity import class_fidelity_multi_label, mark_judge_real_auroc

    ls = LabelSpace(NAMES, True)
    t = np.eye(4, dtype=int)[np.repeat(np.arange(4), 5)]
    fid = class_fidelity_multi_label(t, np.clip(t * 0.3 + 0.1, 0, 1), list(NAMES), GROUPS4)
    fid = mark_judge_real_auroc(fid, {"a": 0.9, "b": 1.0, "c": 0.5, "d": 0.7}, list(NAMES), GROUPS4)
    report = {"label_space": {"names": list(NAMES), "multi_label": True}, "groups": GROUPS4,
              "recipe": {"evaluate": {"judge_min_real_recall": 0.9}},
              "classification": {"test": {}}, "generation": {"class_fidelity": fid}}
    m = cell_metrics(report, None)
    assert m["judge_real_auroc"] == {"a": 0.9, "b": 1.0, "c": 0.5, "d": 0.7} and "judge_real_recall" not in m
    j = judge_summary(m, ls, report)
    assert j["ceiling"] == "AUROC" and j["real_auroc_per_class"] == m["judge_real_auroc"]
    assert j["classes_it_cannot_recognise"] == ["c"]  # at chance; the recall threshold plays no part
    assert j["min_real_recall"] is None and j["real_recall_per_class"] is None
