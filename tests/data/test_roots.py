"""Image paths stay inside their root after following symlinks; a manifest row's root is data.root
or (root=manifest) the manifest's own folder, and synth's merged.csv uses one for real rows and the
other for synthetic rows, so the two folders may live anywhere."""

import os

import pandas as pd
import pytest

from medlt.cli import main
from medlt.data.table import collect, load_table
from medlt.recipe import load_recipe
from tests.data.test_bad_images import recipe_file, write_manifest_data


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_symlink_out_of_root_is_refused(tmp_path, capsys):
    root = tmp_path / "d"
    write_manifest_data(root)
    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir()
    os.replace(root / "img" / "train_1.png", secret)
    os.symlink(secret, root / "img" / "train_1.png")  # textually inside root, really outside
    rec = recipe_file(tmp_path, root)
    code, _, err = _run(["data", "validate", rec], capsys)
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert code != 0 and len(lines) == 2  # the problem, then the count
    assert "manifest.csv:row 2: [path-escapes-root]" in lines[0] and str(secret) in lines[0]
    code, _, err = _run(["data", "preview", rec, "--out", str(tmp_path / "p")], capsys)
    assert code != 0 and "path-escapes-root" in err and not (tmp_path / "p").exists()
    # a symlink that stays inside the root, and a data.root that is itself a symlink, are fine
    os.remove(root / "img" / "train_1.png")
    os.replace(secret, root / "img" / "real_1.png")
    os.symlink("real_1.png", root / "img" / "train_1.png")
    os.symlink(root, tmp_path / "link")
    code, out, err = _run(["data", "validate", recipe_file(tmp_path, tmp_path / "link")], capsys)
    assert code == 0, err


def test_manifest_root_column(tmp_path):
    data_root = tmp_path / "data"
    write_manifest_data(data_root)
    side = tmp_path / "side"  # a manifest living in another folder, with rows of both kinds
    side.mkdir()
    from medlt.data.io import write_png
    from tests.data.builders import upright_image

    write_png(side / "extra.png", upright_image(32, 32))
    df = pd.read_csv(data_root / "manifest.csv", dtype=str)
    df["root"] = ""
    extra = {**df.iloc[0].to_dict(), "image": "extra.png", "patient_id": "x", "root": "manifest"}
    df = pd.concat([df, pd.DataFrame([extra])], ignore_index=True)
    df.to_csv(side / "m.csv", index=False)
    rec = load_recipe(recipe_file(tmp_path, data_root, f"  labels: {side / 'm.csv'}\n"))
    t = load_table(rec)
    assert t.frame["image"].iloc[-1] == str(side / "extra.png")
    assert t.frame["image"].iloc[0] == str(data_root / "img/train_0.png")
    assert "root" not in t.frame.columns
    # each row is checked against its own root: '../data/...' leaves the manifest's folder
    df.loc[len(df) - 1, "image"] = "../data/img/train_0.png"
    df.loc[0, "root"] = "synthetic"
    df.to_csv(side / "m.csv", index=False)
    _, problems = collect(rec.data)
    codes = {(p.row, p.code) for p in problems}
    assert (len(df), "path-escapes-root") in codes and (1, "bad-root") in codes


def test_merged_manifest_roots_and_consumers(tmp_path, capsys):
    from medlt.classify.data import recipe_for_train_manifest
    from medlt.data.labels import LabelSpace
    from medlt.synth.generate import run_synth
    from tests.synth.fakes import FakeGenerator

    real_root = tmp_path / "tree-a" / "real"
    write_manifest_data(real_root, n_train=5)
    rec_path = recipe_file(tmp_path, real_root)
    rec = load_recipe(rec_path)
    out = tmp_path / "tree-b" / "deep" / "synth"
    gen = FakeGenerator(LabelSpace(names=("A", "B"), multi_label=False), image_shape=(1, 32, 32))
    run_synth(rec, out, generator=gen, quota="to_head", batch_size=4, show_progress=False)
    merged = pd.read_csv(out / "merged.csv", dtype=str, keep_default_na=False)
    real, syn = merged[merged["source"] == "real"], merged[merged["source"] == "synthetic"]
    assert set(real["root"]) == {"data"} and set(syn["root"]) == {"manifest"}
    assert real["image"].str.startswith("img/").all() and syn["image"].str.startswith("images/").all()
    assert set(syn["steps"]) == {"50"}  # not "50.0" next to the real rows' blanks
    assert (out / "merged.root.txt").read_text().strip() == str(real_root.resolve())
    m = load_table(load_recipe(out / "merged.recipe.yaml"))
    assert m.class_counts("train") == [3, 3]
    code, stdout, err = _run(["data", "stats", str(out / "merged.recipe.yaml"), "--json"], capsys)
    assert code == 0, err
    t = load_table(recipe_for_train_manifest(rec, out / "merged.csv"))
    assert t.class_counts("train") == [3, 3]
    assert all(os.path.isfile(p) for p in t.frame["image"])
    # a synthetic file replaced by a symlink out of the synth folder is caught against that root
    victim = out / syn["image"].iloc[0]
    os.remove(victim)
    os.symlink(real_root / real["image"].iloc[0], victim)
    _, problems = collect(load_recipe(out / "merged.recipe.yaml").data)
    assert [p.code for p in problems] == ["path-escapes-root"] and "the manifest's folder" in problems[0].message
