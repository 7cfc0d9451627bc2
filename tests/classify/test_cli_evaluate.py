"""End to end through the CLI on a small PNG dataset written at test time: train a real-only
classifier, evaluate it against a synthetic folder with a planted near-copy, train on
real+synthetic (merged.csv), compare both runs."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import fakedata  # noqa: E402

from medlt.cli import main  # noqa: E402
from tests.cli_run import run_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("evalworld")
    (base / "real").mkdir()
    (base / "syn").mkdir()
    recipe = fakedata.make_real(base / "real")
    planted = fakedata.make_synthetic(base / "real", base / "syn")
    merged = fakedata.make_merged(base / "real", base / "syn", base)
    try:
        main(["classify", str(recipe), "--out", str(base / "clf_real"), "--set", "classifier.epochs=2"])
    except SystemExit as e:
        assert not e.code
    try:
        main(["evaluate", str(recipe), "--classifier", str(base / "clf_real"), "--synthetic", str(base / "syn"),
              "--out", str(base / "eval_real")])
    except SystemExit as e:
        assert not e.code
    return {"base": base, "recipe": recipe, "planted": planted, "merged": merged}


def test_classify_run_layout(world):
    run = world["base"] / "clf_real"
    for p in ("checkpoints/best.pt", "checkpoints/last.pt", "recipe.yaml", "history.json", "summary.json"):
        assert (run / p).is_file(), p
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["selection_metric"] == "val balanced_accuracy"


def test_report_numbers_match_metric_functions(world):
    from medlt.classify import load_classifier
    from medlt.data.labels import group_of_count
    from medlt.data.loaders import build_dataset
    from medlt.metrics import balanced_accuracy, frechet_distance, per_class_recall
    from medlt.recipe import load_recipe

    rep = json.loads((world["base"] / "eval_real" / "report.json").read_text())
    recipe = load_recipe(world["recipe"])
    clf = load_classifier(world["base"] / "clf_real")
    assert rep["classifier"]["checkpoint_sha256"] == clf.checkpoint_sha256
    assert rep["train_class_counts"] == fakedata.TRAIN_COUNTS
    assert rep["groups"] == [group_of_count(c, (10, 20)) for c in fakedata.TRAIN_COUNTS] == ["head", "medium", "tail"]
    for role in ("test", "test_longtail"):
        ds = build_dataset(recipe, role)
        x = torch.stack([ds[i]["image"] for i in range(len(ds))])
        y = np.array([int(ds[i]["label"]) for i in range(len(ds))])
        pred = clf.predict_proba(x).argmax(1).numpy()
        m = rep["classification"][role]
        assert m["n"] == len(ds)
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy(y, pred, 3), abs=1e-12)
        assert m["per_class_recall"] == pytest.approx(per_class_recall(y, pred, 3))
        assert m["group_mean_recall"]["tail"] == pytest.approx(m["per_class_recall"][2])
    # overall FID = frechet_distance of the classifier's features, real train vs synthetic
    real = build_dataset(recipe, "train")
    fr = clf.features(torch.stack([real[i]["image"] for i in range(len(real))]))
    from medlt.classify.data import synthetic_recipe

    srec = synthetic_recipe(recipe, world["base"] / "syn")
    syn = build_dataset(srec, "train")
    fs = clf.features(torch.stack([syn[i]["image"] for i in range(len(syn))]))
    gen = rep["generation"]
    assert gen["feature_extractor"].startswith("classifier:resnet18-2d[train=real]@")
    fk = gen["by_extractor"][gen["feature_extractor"]]["fid_kid"]
    assert fk["extractor"] == gen["feature_extractor"]
    assert fk["pooled"]["fid"] == pytest.approx(frechet_distance(fr, fs), rel=1e-4)
    assert set(fk["scopes"]) == {"overall", "group:head", "group:medium", "group:tail"}
    # Rare has 6 < evaluate.min_real_per_class (10) real images: no value, in no scope
    assert fk["per_class"]["Rare"]["status"] == "too_few_real_images" and fk["per_class"]["Rare"]["fid"] is None
    assert fk["scopes"]["overall"]["classes"] == ["Big", "Mid"]
    # class-matched overall FID = FID between the uniform mixtures of the per-class moments
    from medlt.metrics import mixture_moments
    from medlt.metrics.frechet import frechet_distance_from_moments

    ry = torch.tensor([int(real[i]["label"]) for i in range(len(real))])
    sy = torch.tensor([int(syn[i]["label"]) for i in range(len(syn))])

    def mix(f, y):
        parts = [f[y == c].double() for c in (0, 1)]
        return mixture_moments([0.5, 0.5], [p.mean(0) for p in parts], [torch.cov(p.T) for p in parts])

    assert fk["scopes"]["overall"]["fid"] == pytest.approx(
        frechet_distance_from_moments(*mix(fr, ry), *mix(fs, sy)), rel=1e-4)


def test_memorization_flags_planted_copy_and_html_is_self_contained(world):
    out = world["base"] / "eval_real"
    gen = json.loads((out / "report.json").read_text())["generation"]
    mem = gen["by_extractor"][gen["feature_extractor"]]["memorization"]
    assert mem["per_class"]["Rare"]["n_flagged"] >= 1
    top = mem["closest_pairs"][0]
    assert top["synthetic_id"] == world["planted"] and top["real_id"] == "p_train_2_0.png" and top["flagged"]
    assert top["exact_copy"] and top["ratio"] == 0.0
    assert (out / top["png"]).stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 8
    assert not re.search(r"""src=['"](?!data:)""", html)  # nothing loaded from outside the file
    md = (out / "report.md").read_text()
    assert "classifier:resnet18-2d" in md and "Memorization" in md
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (out / link).is_file()



def test_per_image_memorization_csv_in_the_evaluation_folder(world):
    """One row per synthetic image with its file, nearest real image, distances, ratio and flag;
    its flags add up to the report's counts and the planted exact copy is there."""
    import pandas as pd

    out = world["base"] / "eval_real"
    gen = json.loads((out / "report.json").read_text())["generation"]
    mem = gen["by_extractor"][gen["feature_extractor"]]["memorization"]
    assert mem["per_image_csv"] == "memorization/extractor0_per_image.csv"
    df = pd.read_csv(out / mem["per_image_csv"], keep_default_na=False)
    assert len(df) == gen["n_synthetic"] == df["synthetic_id"].nunique()
    assert df["flagged"].sum() == mem["overall"]["n_flagged"] and df["exact_copy"].sum() == mem["overall"]["n_exact_copies"]
    row = df[df["synthetic_id"] == world["planted"]].iloc[0]
    assert row["nearest_real_id"] == "p_train_2_0.png" and row["flagged"] == 1 and float(row["ratio"]) == 0.0
    assert Path(row["synthetic_image"]).is_file() and Path(row["nearest_real_image"]).name == "p_train_2_0.png"
    ok = df[df["ratio"] != ""]
    assert ((ok["ratio"].astype(float) <= mem["ratio_threshold"]) == (ok["flagged"] == 1)).all()

def test_train_on_merged_and_compare_runs(world, capsys):
    b = world["base"]
    code, out, err = run_cli(["classify", world["recipe"], "--out", b / "clf_merged", "--train-manifest",
                              world["merged"], "--set", "classifier.epochs=1"], capsys)
    assert code == 0, err
    summary = json.loads((b / "clf_merged" / "summary.json").read_text())
    assert summary["train_synthetic_images"] == "31" and summary["train_images"] == "93"
    from medlt.classify import load_classifier

    assert load_classifier(b / "clf_merged").train_class_counts == [50, 26, 17]
    code, out, err = run_cli(["evaluate", world["recipe"], "--classifier", b / "clf_merged", "--out",
                              b / "eval_merged"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["report", b / "eval_real", b / "eval_merged", "--html", b / "compare.html"], capsys)
    assert code == 0, err
    assert "| eval_real | real |" in out and "| eval_merged | real+synthetic |" in out
    assert (b / "compare.html").read_text().count("data:image/png;base64,") == 2


def test_cli_error_paths(world, tmp_path, capsys):
    r = world["recipe"]
    code, _, err = run_cli(["evaluate", r, "--classifier", tmp_path / "nope", "--out", tmp_path / "e"], capsys)
    assert code != 0 and "no classifier checkpoint" in err and "Traceback" not in err
    code, _, err = run_cli(["evaluate", r, "--classifier", world["base"] / "clf_real", "--synthetic", tmp_path,
                            "--out", tmp_path / "e"], capsys)
    assert code != 0 and "no manifest.csv" in err
    # a "synthetic" folder whose manifest claims real images is refused, naming the row
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    import pandas as pd

    df = pd.read_csv(world["base"] / "syn" / "manifest.csv", dtype=str)
    for p in df["image"]:
        (bad / p).write_bytes((world["base"] / "syn" / p).read_bytes())
    df.loc[3, "source"] = "real"
    df.to_csv(bad / "manifest.csv", index=False)
    code, _, err = run_cli(["evaluate", r, "--classifier", world["base"] / "clf_real", "--synthetic", bad,
                            "--out", tmp_path / "e"], capsys)
    assert code != 0 and "expected 'synthetic'" in err and "row" in err
    # a capped real reference is used and reported
    code, _, err = run_cli(["evaluate", r, "--classifier", world["base"] / "clf_real", "--synthetic",
                            world["base"] / "syn", "--out", tmp_path / "capped", "--set",
                            "evaluate.max_real_reference=20", "--set", "evaluate.roles=[test]"], capsys)
    assert code == 0, err
    gen = json.loads((tmp_path / "capped" / "report.json").read_text())["generation"]
    assert gen["n_real_train"] == 20 and "subset of 20 of the 62" in gen["real_reference"]
    assert gen["by_extractor"][gen["feature_extractor"]]["fid_kid"]["pooled"]["n_real"] == 20
    code, _, err = run_cli(["report", tmp_path], capsys)
    assert code != 0 and "no report.json" in err
    code, _, err = run_cli(["classify", r, "--out", tmp_path / "c", "--train-manifest", tmp_path / "x.csv"], capsys)
    assert code != 0 and "file not found" in err
    code, _, err = run_cli(["classify", r, "--out", tmp_path / "c", "--set", "classifier.architecture=resnet51"],
                           capsys)
    assert code != 0 and "resnet" in err


def test_crt_through_cli_uses_class_balanced_loader(world, capsys):
    b = world["base"]
    code, _, err = run_cli(["classify", world["recipe"], "--out", b / "clf_crt", "--set", "classifier.method=crt",
                            "--set", "classifier.epochs=1", "--set", "classifier.crt_epochs=1"], capsys)
    assert code == 0, err
    hist = json.loads((b / "clf_crt" / "history.json").read_text())
    assert [h["stage"] for h in hist] == ["main", "crt"]
    from medlt.utils.checkpoint import load_checkpoint

    main_ = load_checkpoint(b / "clf_crt" / "checkpoints" / "best_main.pt")["model"]
    final = load_checkpoint(b / "clf_crt" / "checkpoints" / "best.pt")
    assert final["stage"] == "crt"
    assert all(torch.equal(main_[k], final["model"][k]) for k in main_ if k.startswith("backbone."))


def test_two_extractors_each_keyed_by_name_with_sha256(world, tmp_path, capsys):
    """--feature-extractor A --feature-extractor B: every generation block per extractor, keyed by
    its name, with the file's sha256."""
    from medlt.utils.checkpoint import file_sha256

    recipe, base = world["recipe"], world["base"]
    ts = tmp_path / "pool.ts"
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()).eval()
    torch.jit.trace(net, torch.zeros(2, 1, 32, 32)).save(str(ts))
    quick = ["--set", "evaluate.roles=[test]", "--set", "evaluate.bootstrap_resamples=0",
             "--set", "evaluate.fid_bootstrap_replicates=0"]
    code, _, err = run_cli(["evaluate", recipe, "--classifier", base / "clf_real", "--synthetic", base / "syn",
                            "--out", tmp_path / "ev", "--feature-extractor", base / "clf_real",
                            "--feature-extractor", ts, *quick], capsys)
    assert code == 0, err
    gen = json.loads((tmp_path / "ev" / "report.json").read_text())["generation"]
    names = [e["name"] for e in gen["feature_extractors"]]
    assert len(names) == 2 and names[0].startswith("classifier:") and names[1].startswith("torchscript:pool.ts@")
    assert gen["feature_extractor"] == names[0]
    shas = [e["sha256"] for e in gen["feature_extractors"]]
    assert shas == [file_sha256(base / "clf_real" / "checkpoints" / "best.pt"), file_sha256(ts)]
    assert set(gen["by_extractor"]) == set(names)
    for n in names:
        block = gen["by_extractor"][n]
        assert block["fid_kid"]["extractor"] == n and block["memorization"]["feature_extractor"] == n
        for p in block["memorization"]["closest_pairs"]:
            assert (tmp_path / "ev" / p["png"]).is_file()
    f0, f1 = (gen["by_extractor"][n]["fid_kid"]["pooled"]["fid"] for n in names)
    assert f0 != f1  # different feature spaces, different numbers (never compared)
    md = (tmp_path / "ev" / "report.md").read_text()
    assert all(f"FID and KID ({n})" in md and f"Memorization ({n})" in md for n in names)
    code, _, err = run_cli(["evaluate", recipe, "--classifier", base / "clf_real", "--synthetic", base / "syn",
                            "--out", tmp_path / "ev2", "--feature-extractor", ts, "--feature-extractor", ts, *quick],
                           capsys)
    assert code != 0 and "given twice" in err and "Traceback" not in err


def test_a_failing_evaluate_says_truthfully_what_it_wrote(world, tmp_path, capsys, monkeypatch):
    """An invalid synthetic manifest is found before any file is written ("nothing was changed" is
    then true); a validation failure after the first files says which files are there."""
    import pandas as pd

    from medlt.errors import Problem, ValidationFailed

    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    df = pd.read_csv(world["base"] / "syn" / "manifest.csv", dtype=str)
    for p in df["image"]:
        (bad / p).write_bytes((world["base"] / "syn" / p).read_bytes())
    df.loc[2, "Mid"] = "7"
    df.to_csv(bad / "manifest.csv", index=False)
    args = ["evaluate", world["recipe"], "--classifier", world["base"] / "clf_real", "--set", "evaluate.roles=[test]",
            "--set", "evaluate.bootstrap_resamples=0"]
    code, _, err = run_cli([*args, "--synthetic", bad, "--out", tmp_path / "e"], capsys)
    assert code != 0 and "Traceback" not in err and "nothing was changed" in err
    assert "manifest.csv:row 3" in err and "Mid" in err
    assert not (tmp_path / "e").exists()  # refused before the predictions were written

    def late_failure(*a, **k):
        raise ValidationFailed([Problem("late.csv", 4, "bad-label", "not 0/1")])

    monkeypatch.setattr("medlt.classify.evaluation.generation_metrics", late_failure)
    code, _, err = run_cli([*args, "--synthetic", world["base"] / "syn", "--out", tmp_path / "e2"], capsys)
    assert code != 0 and "Traceback" not in err and "nothing was changed" not in err
    assert "error: late.csv:row 4: [bad-label] not 0/1" in err
    assert f"1 problem(s); {tmp_path / 'e2'} already holds predictions_test.csv from this unfinished run" in err


def test_an_empty_synthetic_set_is_named_as_such(world, tmp_path, capsys):
    """A synth folder whose manifest.csv has no rows: one line saying the synthetic set is empty, not
    three missing-split errors; nothing written."""
    import pandas as pd

    empty = tmp_path / "empty"
    empty.mkdir()
    cols = pd.read_csv(world["base"] / "syn" / "manifest.csv", nrows=0).columns
    pd.DataFrame(columns=cols).to_csv(empty / "manifest.csv", index=False)
    code, _, err = run_cli(["evaluate", world["recipe"], "--classifier", world["base"] / "clf_real",
                            "--synthetic", empty, "--out", tmp_path / "e"], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "synthetic set is empty" in lines[0], err
    assert "missing-split" not in err and not (tmp_path / "e").exists()
