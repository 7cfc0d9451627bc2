"""The ideal arm: the quota plan filled with new phantom images of the true distribution."""

import pandas as pd
import pytest

from medlt.bench.copies import copies_frame
from medlt.bench.ideal import ideal_phantom_seed, write_ideal_set
from medlt.classify.data import classifier_data, synthetic_recipe
from medlt.data.loaders import build_dataset
from medlt.data.table import load_table
from medlt.errors import DataError
from medlt.recipe import load_recipe


def test_ideal_set_follows_the_plan_with_new_images(tiny_recipe, tmp_path):
    recipe = load_recipe(tiny_recipe)
    res = write_ideal_set(recipe, tmp_path / "set", judged_per_class=2)
    ideal = pd.read_csv(tmp_path / "set" / "ideal.csv")
    copies = copies_frame(recipe, load_table(recipe))
    names = list(load_table(recipe).label_space.names)
    added = ideal[ideal["source"] == "ideal"]
    # the same label vectors and counts as the copies control (= the synthesis plan)
    assert added[names].sum().tolist() == copies[copies["source"] == "copy"][names].sum().tolist()
    assert res["ideal_images"] == len(added) > 0
    assert (added["root"] == "manifest").all() and added["image"].str.startswith("phantom/").all()
    # new images: none of them is a real training file
    real_files = set(ideal.loc[ideal["source"] == "real", "image"])
    assert not set(added["image"]) & real_files
    assert len(set(added["image"])) == len(added)  # the balanced phantom has enough images: no repeat
    # the classifier reads it as a training manifest
    data = classifier_data(recipe, train_manifest=tmp_path / "set" / "ideal.csv")
    assert data.meta["train_images"] == len(ideal[ideal["split"] == recipe.data.splits.train])
    # the judged set: 2 per class, disjoint from the training rows, readable as a synth folder
    judged = pd.read_csv(tmp_path / "set" / "manifest.csv")
    assert judged[names].sum().tolist() == [2] * len(names)
    assert not set(judged["image"]) & set(added["image"])
    assert (judged["source"] == "synthetic").all()
    ds = build_dataset(synthetic_recipe(recipe, tmp_path / "set"), "train")
    assert len(ds) == 2 * len(names)
    # deterministic: a re-run writes the same files
    before = (tmp_path / "set" / "ideal.csv").read_text()
    write_ideal_set(recipe, tmp_path / "set", judged_per_class=2)
    assert (tmp_path / "set" / "ideal.csv").read_text() == before


def test_ideal_needs_a_phantom_and_a_plan(tiny_recipe, tmp_path):
    with pytest.raises(DataError, match="plans no image"):
        write_ideal_set(load_recipe(tiny_recipe, ["synth.quota=to_count:1"]), tmp_path / "s")
    assert ideal_phantom_seed(3) not in (3, 4)


def test_ideal_arm_on_a_ct_phantom_with_a_probe_set(tiny_ct_recipe, tmp_path):
    """CT-RATE (multi-label, every scan several findings): the ideal set renders the planned vectors
    and a one-hot judged set; it used to stop at 'class ... has 0 unused phantom images'."""
    from collections import Counter

    from medlt.synth.generate import make_plan

    recipe = load_recipe(tiny_ct_recipe, ["synth.quota=to_count:3"])
    table = load_table(recipe)
    names = list(table.label_space.names)
    res = write_ideal_set(recipe, tmp_path / "set", judged_per_class=2)
    added = pd.read_csv(tmp_path / "set" / "ideal.csv").query("source == 'ideal'")
    planned = Counter(tuple(j.label) for j in make_plan(recipe, table).jobs)
    assert Counter(tuple(int(v) for v in r) for r in added[names].to_numpy()) == planned
    judged = pd.read_csv(tmp_path / "set" / "manifest.csv")
    assert judged[names].sum().tolist() == [2] * len(names) and (judged[names].sum(axis=1) == 1).all()
    assert res["ideal_images"] == len(added) == sum(planned.values())
