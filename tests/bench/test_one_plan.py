"""Every arm of one bench fills ONE plan: the copies control, the ideal arm and every generator seed
add the same label vectors, with the same per-class counts, on multi-label data too."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from medlt.bench.cells import Runner, plan_cells
from medlt.bench.copies import copies_frame
from medlt.bench.ideal import write_ideal_set
from medlt.data.table import load_table
from medlt.recipe import load_recipe
from medlt.synth.generate import make_plan


def vectors(frame: pd.DataFrame, names) -> Counter:
    return Counter("".join(str(int(v)) for v in row) for row in frame[list(names)].to_numpy())


def generator_plans(recipe, out, seeds, monkeypatch) -> dict[int, Counter]:
    """The label vectors each generator cell's `medlt synth` plans (plan.json): the bench's generator
    cells run with training and sampling replaced by a dry-run synth (the plan is all that matters)."""
    import medlt.diffusion.train as train_mod
    import medlt.synth.generate as gen_mod
    import medlt.utils.checkpoint as ckpt_mod

    real_run_synth = gen_mod.run_synth

    def dry_synth(r, out_dir, **kw):
        kw.pop("checkpoint", None)
        return real_run_synth(r, out_dir, dry_run=True, **kw)

    monkeypatch.setattr(train_mod, "train", lambda *a, **k: None)
    monkeypatch.setattr(gen_mod, "run_synth", dry_synth)
    monkeypatch.setattr(ckpt_mod, "load_checkpoint", lambda *a, **k: {"step": recipe.training.max_steps})
    plan = plan_cells(out, ["plain"], list(seeds), [0], use_oracle=False)
    runner = Runner(recipe, plan, log=lambda line: None)
    runner.run([plan.generator("plain", s) for s in seeds])
    got = {}
    for s in seeds:
        d = json.loads((plan.generator("plain", s).dir / "synth" / "plan.json").read_text())
        got[s] = Counter(d["label_vectors"])
    return got


def test_copies_ideal_and_every_generator_seed_fill_one_plan_multi_label(tiny_ml_recipe, tmp_path, monkeypatch):
    recipe = load_recipe(tiny_ml_recipe)
    table = load_table(recipe)
    names = list(table.label_space.names)
    assert table.label_space.multi_label
    copies = copies_frame(recipe, table)
    copy_vecs = vectors(copies[copies["source"] == "copy"], names)
    write_ideal_set(recipe, tmp_path / "ideal", judged_per_class=1)
    ideal = pd.read_csv(tmp_path / "ideal" / "ideal.csv")
    added = ideal[ideal["source"] == "ideal"]
    ideal_vecs = vectors(added, names)
    gens = generator_plans(recipe, tmp_path / "bench", (0, 1), monkeypatch)
    plan = make_plan(recipe, table)
    planned = Counter("".join(str(v) for v in j.label) for j in plan.jobs)
    assert sum(planned.values()) > 20 and sum(1 for v in planned if v.count("1") > 1) > 0  # co-occurrences
    # the ideal arm and every generator seed fill the plan exactly: same vectors, same counts
    assert ideal_vecs == planned
    assert gens[0] == planned and gens[1] == planned
    assert np.array_equal(added[names].sum().to_numpy(),
                          np.sum([j.label for j in plan.jobs], axis=0))
    # the copies fill it too, except planned vectors that no real training image carries (the plan's
    # one-hot fallback), which copy an image containing the planned class; off_plan_rows counts them
    real_vecs = vectors(table.frame[table.frame["split"] == recipe.data.splits.train], names)
    copyable = {v: n for v, n in planned.items() if v in real_vecs}
    uncopyable = sum(planned.values()) - sum(copyable.values())
    assert all(copy_vecs[v] >= n for v, n in copyable.items())
    assert sum(copy_vecs.values()) == sum(planned.values())
    from medlt.bench.copies import off_plan_rows

    assert off_plan_rows(plan, copies, names) == uncopyable
    # one new image per planned image (none backs two rows)
    assert added["image"].is_unique
    # the judged set: one one-hot image per class, none of them a training row
    judged = pd.read_csv(tmp_path / "ideal" / "manifest.csv")
    assert (judged[names].sum(axis=1) == 1).all() and judged[names].sum().tolist() == [1] * len(names)
    assert not set(judged["image"]) & set(added["image"])


def test_generator_seeds_keep_their_own_noise(tiny_ml_recipe, tmp_path, monkeypatch):
    """One plan, but each generator seed samples its own noise (the recipe seed's)."""
    recipe = load_recipe(tiny_ml_recipe)
    generator_plans(recipe, tmp_path / "bench", (0, 1), monkeypatch)
    sha = [json.loads((tmp_path / "bench" / "plain" / f"g{s}" / "synth" / "plan.json").read_text())
           for s in (0, 1)]
    assert sha[0]["label_vectors"] == sha[1]["label_vectors"]
    assert sha[0]["jobs_sha256"] != sha[1]["jobs_sha256"]  # the noise seeds differ
    assert sha[0]["plan_seed"] == sha[1]["plan_seed"] == recipe.seed


@pytest.mark.slow
def test_multi_label_bench_end_to_end_fills_one_plan(tiny_ml_recipe, tmp_path, capsys):
    """A real tiny bench on the NIH multi-label phantom: the ideal set, both generator seeds' synthetic
    sets and the copies control add the planned vectors (copies: except planned vectors no real image
    carries, counted in the copies cell's record)."""
    from tests.cli_run import run_cli

    out = tmp_path / "b"
    code, _, err = run_cli(["bench", tiny_ml_recipe, "--out", out, "--methods", "plain", "--seeds", "0,1",
                            "--classifier-seeds", "0", "--oracle-per-class", "2", "--probe-per-class", "1",
                            "--no-cas", "--bootstrap-resamples", "100"], capsys)
    assert code == 0, err
    recipe = load_recipe(tiny_ml_recipe)
    table = load_table(recipe)
    names = list(table.label_space.names)
    plan = make_plan(recipe, table)
    planned = Counter("".join(str(v) for v in j.label) for j in plan.jobs)
    ideal = pd.read_csv(out / "ideal" / "set" / "ideal.csv")
    assert vectors(ideal[ideal["source"] == "ideal"], names) == planned
    for s in (0, 1):
        synth = pd.read_csv(out / "plain" / f"g{s}" / "synth" / "manifest.csv")
        assert vectors(synth, names) == planned
    copies = pd.read_csv(out / "copies" / "c0" / "copies.csv")
    from medlt.bench.copies import off_plan_rows

    rec = json.loads((out / "copies" / "c0" / "cell.json").read_text())
    assert rec["copies"] == sum(planned.values()) and rec["copies_off_plan"] == off_plan_rows(plan, copies, names)


def test_an_uncopyable_planned_vector_copies_the_image_with_the_fewest_other_labels():
    from types import SimpleNamespace

    from medlt.bench.copies import plan_sources

    pool = np.array([[1, 1, 1, 0]] * 5 + [[1, 0, 0, 1]] + [[0, 1, 0, 0]])
    jobs = [SimpleNamespace(label=(1, 0, 0, 0), driver=0)] * 4 + [SimpleNamespace(label=(0, 1, 0, 0), driver=1)]
    src = plan_sources(SimpleNamespace(jobs=jobs), pool, seed=0, names=list("abcd"))
    assert src == [5, 5, 5, 5, 6]  # no one-hot row of class a: the row with one other label, not two
