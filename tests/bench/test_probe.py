"""The probe set has its own seed namespace: no probe image repeats a quota image."""

from medlt.bench.probe import probe_inputs, probe_seed
from medlt.data.table import load_table
from medlt.recipe import load_recipe
from medlt.synth.generate import make_plan


def test_no_probe_seed_equals_a_quota_seed(tiny_recipe):
    recipe = load_recipe(tiny_recipe, ["synth.quota=to_count:6"])
    quota = make_plan(recipe, load_table(recipe))
    p_recipe, p_table, p_quota = probe_inputs(recipe, 6)
    probe = make_plan(p_recipe, p_table, p_quota)
    names = load_table(recipe).label_space.names
    # the probe is balanced: 6 per class, and the quota set plans images for the rarer classes
    assert [sum(j.driver == c for j in probe.jobs) for c in range(len(names))] == [6] * len(names)
    assert quota.jobs and len(probe.jobs) == 6 * len(names)
    # same (class, index) pairs exist in both plans, yet their seeds differ
    shared = {(j.key, j.index) for j in quota.jobs} & {(j.key, j.index) for j in probe.jobs}
    assert shared
    assert not {j.seed for j in quota.jobs} & {j.seed for j in probe.jobs}
    assert probe_seed(recipe.seed) != recipe.seed and probe_seed(0) == probe_seed(0)
