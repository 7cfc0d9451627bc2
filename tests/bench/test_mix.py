"""The "copies + synthetic" arm's manifest (medlt.bench.mix): the copies control's rows plus a synth
folder's rows, sources kept, every path under its root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlt.cliutils import load_recipe_cli
from medlt.data.io import write_png
from medlt.data.table import load_table
from medlt.errors import DataError
from medlt.synth.generate import make_plan


def fake_synth_dir(recipe, table, out: Path, extra_rows: int = 0) -> pd.DataFrame:
    """A synth-like folder: one PNG per planned job under out/images, out/manifest.csv relative to out
    (source synthetic, a provenance column), `extra_rows` more images of the first class."""
    names = list(table.label_space.names)
    jobs = [tuple(int(v) for v in j.label) for j in make_plan(recipe, table).jobs]
    jobs += [tuple(int(i == 0) for i in range(len(names)))] * extra_rows
    rng = np.random.default_rng(0)
    rows = []
    for n, vec in enumerate(jobs):
        write_png(out / "images" / f"s{n}.png", rng.random((16, 16)).astype(np.float32))
        rows.append({"id": f"syn{n:04d}", "image": f"images/s{n}.png", "patient_id": f"synthetic-{n}",
                     "split": recipe.data.splits.train, **dict(zip(names, vec, strict=True)),
                     "source": "synthetic", "seed": str(1000 + n)})
    df = pd.DataFrame(rows)
    df.to_csv(out / "manifest.csv", index=False)
    return df


def test_copies_plus_synthetic_rows_sources_and_roots(tiny_recipe, tmp_path):
    from medlt.bench.copies import copies_frame
    from medlt.bench.mix import write_copies_synthetic_manifest
    from medlt.classify.data import classifier_data, recipe_for_train_manifest

    r = load_recipe_cli(tiny_recipe, [])
    table = load_table(r)
    synth = tmp_path / "gen" / "synth"
    syn = fake_synth_dir(r, table, synth, extra_rows=3)
    path = write_copies_synthetic_manifest(r, table, synth)
    assert path == synth.resolve() / "copies_synthetic.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    copies = copies_frame(r, table)
    n_real, n_copy = int((copies["source"] == "real").sum()), int((copies["source"] == "copy").sum())
    plan = make_plan(r, table)
    # every row of the copies control, then every synthetic row on top (no synthetic row replaces a copy)
    assert n_copy == len(plan.jobs) > 0
    assert df["source"].value_counts().to_dict() == {"real": n_real, "copy": n_copy, "synthetic": len(syn)}
    assert len(df) == n_real + n_copy + len(plan.jobs) + 3
    assert df[df["source"] != "synthetic"]["id"].tolist() == copies["id"].astype(str).tolist()
    s = df[df["source"] == "synthetic"]
    assert s["id"].tolist() == syn["id"].tolist() and s["seed"].tolist() == syn["seed"].tolist()
    assert (s["root"] == "manifest").all() and (df[df["source"] != "synthetic"]["root"] == "data").all()
    assert (s["split"] == r.data.splits.train).all() and not df["id"].duplicated().any()
    # paths: real and copy rows under data.root, synthetic rows under the synth folder
    root = Path((synth / "copies_synthetic.root.txt").read_text().strip())
    assert root == Path(r.data.root).resolve()
    for _, row in df.iterrows():
        base = root if row["root"] == "data" else synth.resolve()
        f = (base / row["image"]).resolve()
        assert f.is_file() and f.is_relative_to(base)
    # the classifier reads it: training rows = real training rows + copies + synthetic; the sources travel
    t2 = load_table(recipe_for_train_manifest(r, path))
    names = list(table.label_space.names)
    added = (np.asarray(copies[copies["source"] == "copy"][names].sum()) + np.asarray(syn[names].sum()))
    assert t2.class_counts("train") == [a + int(b) for a, b in zip(table.class_counts("train"), added, strict=True)]
    data = classifier_data(r, train_manifest=path)
    src = pd.Series(list(data.train_sources.values())).value_counts().to_dict()
    n_real_train = int(((copies["source"] == "real") & (copies["split"] == r.data.splits.train)).sum())
    assert src == {"real": n_real_train, "copy": n_copy, "synthetic": len(syn)}
    assert data.real_train_counts == table.class_counts("train")


def test_copies_plus_synthetic_written_above_the_synth_folder(tiny_recipe, tmp_path):
    from medlt.bench.mix import write_copies_synthetic_manifest

    r = load_recipe_cli(tiny_recipe, [])
    table = load_table(r)
    fake_synth_dir(r, table, tmp_path / "gen" / "synth")
    path = write_copies_synthetic_manifest(r, table, tmp_path / "gen" / "synth", tmp_path / "gen")
    df = pd.read_csv(path, dtype=str)
    s = df[df["source"] == "synthetic"]
    assert s["image"].str.startswith("synth/images/").all()
    assert all((tmp_path / "gen" / p).is_file() for p in s["image"])


def test_copies_plus_synthetic_refusals(tiny_recipe, tmp_path):
    from medlt.bench.mix import write_copies_synthetic_manifest

    r = load_recipe_cli(tiny_recipe, [])
    table = load_table(r)
    synth = tmp_path / "synth"
    with pytest.raises(DataError, match="no manifest.csv"):
        write_copies_synthetic_manifest(r, table, synth)
    syn = fake_synth_dir(r, table, synth)
    # a folder beside the synth folder: the synthetic paths would leave it
    with pytest.raises(DataError, match=r"row 1: image 'images/s0.png' is not under"):
        write_copies_synthetic_manifest(r, table, synth, tmp_path / "elsewhere")
    # merged.csv-like input (real rows inside) is refused by row
    bad = syn.copy()
    bad.loc[2, "source"] = "real"
    bad.to_csv(synth / "manifest.csv", index=False)
    with pytest.raises(DataError, match=r"manifest.csv:row 3: source 'real'"):
        write_copies_synthetic_manifest(r, table, synth)
    # an id that a copy row already has
    clash = syn.copy()
    clash.loc[0, "id"] = str(table.frame["id"].iat[0])
    clash.to_csv(synth / "manifest.csv", index=False)
    with pytest.raises(DataError, match="clash"):
        write_copies_synthetic_manifest(r, table, synth)
    pd.DataFrame(columns=syn.columns).to_csv(synth / "manifest.csv", index=False)
    with pytest.raises(DataError, match="empty"):
        write_copies_synthetic_manifest(r, table, synth)
    assert not (synth / "copies_synthetic.csv").exists()


@pytest.mark.slow
def test_bench_with_classifier_options_gives_every_cell_the_same_treatment(tiny_recipe, tmp_path, capsys):
    """`--set classifier.finish=... --set classifier.synthetic_loss_weight=...` reaches every classifier
    cell (real, copies, ideal, the generator's): each finishes on the same real rows; CAS skips it."""
    import json

    from tests.cli_run import run_cli

    out = tmp_path / "b"
    code, _, se = run_cli(["bench", tiny_recipe, "--out", out, "--methods", "plain", "--seeds", "0",
                           "--classifier-seeds", "0", "--oracle-per-class", "2", "--probe-per-class", "2",
                           "--bootstrap-resamples", "100", "--set", "classifier.finish=finetune-real",
                           "--set", "classifier.finish_epochs=1", "--set", "classifier.synthetic_loss_weight=0.5"],
                          capsys)
    assert code == 0, se
    finished = {}
    for cell in ("real/c0", "copies/c0", "ideal/c0", "plain/g0/c0"):
        s = json.loads((out / cell / "classifier" / "summary.json").read_text())
        assert [h["stage"] for h in s["history"]] == ["main", "finetune-real"], cell
        assert s["synthetic_loss_weight"] == 0.5, cell
        finished[cell] = s["finish_real_items"]
    assert len(set(finished.values())) == 1  # the same real rows in every arm
    assert json.loads((out / "plain/g0/c0/classifier/summary.json").read_text())["synthetic_items_weighted"] > 0
    assert json.loads((out / "copies/c0/classifier/summary.json").read_text())["synthetic_items_weighted"] == 0
    cas = json.loads((out / "plain/g0/c0/eval/cas_classifier/summary.json").read_text())
    assert cas["finish_skipped"].startswith("the training set has no real row")
