"""Side-by-side step time of the multi-label conditioning designs (medlt.diffusion.compare_conditioning)."""

import medlt.diffusion.objective as objective
from medlt.data.labels import LabelSpace
from medlt.diffusion.compare_conditioning import step_times
from tests.diffusion.toy import NAMES, toy_recipe


def test_step_times_every_design_on_the_shape_it_is_given(tmp_path, monkeypatch):
    recipe = toy_recipe(tmp_path, [], multi_label=True)
    seen = []
    original = objective.training_terms

    def spy(model, sched, regs, x0, y, **kw):
        seen.append((model.conditioning, tuple(x0.shape)))
        return original(model, sched, regs, x0, y, **kw)

    monkeypatch.setattr(objective, "training_terms", spy)  # step_times imports it at call time
    modes = ("time-embedding", "adaptive-norm", "cross-attention")
    t = step_times(recipe, LabelSpace(NAMES, True), modes, repeats=2, shape=(1, 8, 8))
    assert set(t) == set(modes) and all(v > 0 for v in t.values())
    b = recipe.training.per_rank_batch_size
    assert {s for _, s in seen} == {(b, 1, 8, 8)}
    # 3 rounds (the first a warm-up), each design once per round, the order reversed every other round
    assert [m for m, _ in seen] == list(modes[::-1]) + list(modes) + list(modes[::-1])
