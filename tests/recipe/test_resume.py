"""Which recipe differences a resume accepts, and the history it appends."""

import pytest
import yaml

from medlt.errors import RecipeError
from medlt.recipe.resume import (
    DIFFUSION_RESUMABLE,
    append_resume_history,
    check_resume_recipe,
    recipe_differences,
)

OLD = {"name": "a", "training": {"max_steps": 10, "lr": 0.1}, "sampling": {"batch_size": 4},
       "data": {"cache_dir": None, "root": "/d"}, "regularizers": [{"name": "cbdm", "weight": 1.0}]}


def _new(**changes):
    new = yaml.safe_load(yaml.safe_dump(OLD))
    for key, value in changes.items():
        node = new
        *path, last = key.split("__")
        for p in path:
            node = node[p]
        node[last] = value
    return new


def test_differences_are_dotted_leaves():
    assert recipe_differences(OLD, _new(training__lr=0.2, data__root="/e")) == {
        "data.root": ("/d", "/e"), "training.lr": (0.1, 0.2)}
    assert recipe_differences(OLD, OLD) == {}


def test_cadence_and_unread_sections_are_allowed():
    diff = check_resume_recipe(OLD, _new(training__max_steps=20, sampling__batch_size=8, data__cache_dir="/c"),
                               allowed=DIFFUSION_RESUMABLE, what="--resume", source="ck.pt")
    assert set(diff) == {"training.max_steps", "sampling.batch_size", "data.cache_dir"}


@pytest.mark.parametrize("change, key", [({"training__lr": 1e6}, "training.lr (0.1 -> 1000000.0)"),
                                         ({"data__root": "/elsewhere"}, "data.root ('/d' -> '/elsewhere')"),
                                         ({"regularizers": []}, "regularizers (")])
def test_other_differences_are_refused_listing_every_key(change, key):
    with pytest.raises(RecipeError) as e:
        check_resume_recipe(OLD, _new(training__max_steps=20, **change), allowed=DIFFUSION_RESUMABLE,
                            what="--resume", source="ck.pt")
    assert key in str(e.value) and "training.max_steps (" not in str(e.value) and "\n" not in str(e.value)


def test_history_appends(tmp_path):
    append_resume_history(tmp_path, position={"step": 5}, changed={"training.max_steps": (10, 20)}, command="c")
    append_resume_history(tmp_path, position={"step": 20}, changed={}, command="c")
    h = yaml.safe_load((tmp_path / "resume_history.yaml").read_text())
    assert [e["resumed_at"]["step"] for e in h] == [5, 20]
    assert h[0]["changed"] == {"training.max_steps": {"old": 10, "new": 20}} and h[0]["time_utc"].endswith("+00:00")
