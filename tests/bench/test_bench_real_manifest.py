"""`medlt bench` on real data in medlt's `manifest` format (no phantom, so no oracle and no ideal arm):
the bench trains its own class-balanced judge (`DIR/judge`), reports the judge's recall on each class's
real test images, names the classes it cannot recognise and keeps them out of the fidelity means."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from medlt.data.table import load_table
from medlt.recipe import load_recipe
from tests.bench.conftest import TINY_RECIPE
from tests.cli_run import run_cli


def _as_real_manifest(phantom, recipe_path, root):
    """The phantom's images copied under `root` with a medlt manifest.csv (and no phantom marker)."""
    table = load_table(load_recipe(recipe_path, []))
    names = list(table.label_space.names)
    root.mkdir(parents=True)
    rows = []
    for _, r in table.frame.iterrows():
        name = f"img/{r['id']}"
        (root / "img").mkdir(exist_ok=True)
        shutil.copyfile(r["image"], root / name)
        rows.append({"image": name, "patient_id": f"P{r['patient_id']}", "split": r["split"],
                     **{n: int(r[n]) for n in names}})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return names


@pytest.mark.slow
def test_bench_on_a_manifest_dataset_reports_the_judge_recall(tiny_phantom, tiny_recipe, tmp_path, capsys):
    root = tmp_path / "real"
    names = _as_real_manifest(tiny_phantom, tiny_recipe, root)
    recipe = tmp_path / "real.yaml"
    text = TINY_RECIPE.format(root=root).replace("  format: nih-cxr-lt\n", "  format: manifest\n  classes: nih-cxr-lt\n")
    recipe.write_text(text.replace(f"  labels: {root}\n", f"  labels: {root / 'manifest.csv'}\n"))
    out = tmp_path / "b"
    code, so, se = run_cli(["bench", recipe, "--out", out, "--methods", "plain", "--seeds", "0",
                            "--classifier-seeds", "0", "--probe-per-class", "2", "--bootstrap-resamples", "100"],
                           capsys)
    assert code == 0, se
    t = json.loads((out / "bench.json").read_text())
    assert [r["method"] for r in t["rows"]] == ["real", "copies", "plain"]  # no ideal arm on real data
    j = t["judge"]
    assert j["kind"] == "real-balanced-classifier" and j["reference_classifier"].startswith(str(out / "judge"))
    assert "--reference-classifier" not in j["source"]
    recall = j["real_recall_per_class"]
    assert set(recall) == set(names)
    # the judge's recall is its own balanced-test recall, class by class
    test = load_table(load_recipe(recipe, [])).role("test")
    assert {n: int(test[n].sum()) for n in names} == {n: 2 for n in names}
    bad = [n for n in names if recall[n] is None or recall[n] < 0.5]
    assert bad and j["classes_it_cannot_recognise"] == bad  # a 1-epoch judge cannot recognise every class
    md = (out / "bench.md").read_text()
    assert "judge recall on real test images" in md
    for n in bad:
        assert f"{recall[n]:.2f} (judge cannot recognise this class)" in md
    assert "Caveat: the memorization and FID/KID features come from a classifier trained on the real" in md
    # the cell's fidelity means leave those classes out, and say how many classes entered
    rep = json.loads((out / "plain" / "g0" / "c0" / "eval" / "report.json").read_text())
    cf = rep["generation"]["class_fidelity"]
    assert cf["classes_judge_cannot_recognise"] == bad
    kept = [cf["per_class"][n]["fidelity"] for n in names if n not in bad]
    assert cf["mean_class_fidelity"] == pytest.approx(np.mean(kept))
    assert cf["classes_in_means"]["all"] == [len(kept), len(names)]
    plain = next(r for r in t["rows"] if r["method"] == "plain")
    assert plain["classes_entered"]["fidelity_all"][0] == [len(kept), len(names)]
