import math

import numpy as np
import pytest

from medlt.data.labels import LabelSpace
from medlt.errors import RecipeError
from medlt.synth.jobs import multi_label_jobs, multi_label_vectors, single_label_jobs
from medlt.synth.plan import build_plan
from medlt.synth.quotas import Quota, class_targets, images_to_generate, parse_quota


@pytest.mark.parametrize("text,expected", [
    ("to_head", Quota("to_head")),
    ("to_count:50", Quota("to_count", 50)),
    (" to_count:7 ", Quota("to_count", 7)),
    ("to_ratio:0.5", Quota("to_ratio", 0.5)),
    ("to_ratio:2", Quota("to_ratio", 2.0)),
])
def test_parse_quota_accepts(text, expected):
    assert parse_quota(text) == expected
    assert parse_quota(str(parse_quota(text))) == expected  # str() round-trips


@pytest.mark.parametrize("text", ["head", "to_count", "to_count:0", "to_count:-3", "to_count:2.5",
                                  "to_ratio:0", "to_ratio:-1", "to_ratio:abc", "to_ratio:nan", "to_tail", ""])
def test_parse_quota_rejects_with_accepted_forms(text):
    with pytest.raises(RecipeError) as e:
        parse_quota(text)
    msg = str(e.value)
    assert "to_head" in msg and "to_count:N" in msg and "to_ratio:R" in msg


def test_targets_follow_the_quota_definitions():
    counts = [70, 20, 5, 0]
    assert class_targets(counts, "to_head") == [70, 70, 70, 70]
    assert class_targets(counts, "to_count:30") == [70, 30, 30, 30]  # never below the real count
    assert class_targets(counts, "to_ratio:0.1") == [70, 20, 7, 7]  # 0.1*70 = 7, no float round-up to 8
    assert class_targets(counts, "to_ratio:0.25") == [70, 20, 18, 18]  # ceil(17.5)
    assert images_to_generate(counts, "to_head") == [0, 50, 65, 70]


def test_nih_official_counts_to_head():
    from medlt.data.labels import official_train_counts

    counts = list(official_train_counts("nih-cxr-lt").values())
    gen = images_to_generate(counts, "to_head")
    assert gen[0] == 0 and all(c + g == max(counts) for c, g in zip(counts, gen, strict=True))


def test_single_label_jobs_round_robin_and_counts():
    jobs = single_label_jobs(["a", "b", "c"], [2, 0, 3], recipe_seed=1)
    assert [(j.driver, j.index) for j in jobs] == [(0, 0), (2, 0), (0, 1), (2, 1), (2, 2)]
    assert [j.ordinal for j in jobs] == list(range(5))
    assert len({j.seed for j in jobs}) == 5 and len({j.id for j in jobs}) == 5
    assert all(sum(j.label) == 1 and j.label[j.driver] == 1 for j in jobs)


def _random_multilabel(rng, n, k, p):
    y = (rng.random((n, k)) < p).astype(np.int64)
    return y


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("quota", ["to_head", "to_count:40", "to_ratio:0.7"])
def test_multi_label_greedy_reaches_every_target_exactly(seed, quota):
    rng = np.random.default_rng(seed)
    k = 6
    # long-tailed co-occurring labels: class j present with probability ~ 0.6 / (j + 1)
    y = (rng.random((120, k)) < 0.6 / (np.arange(k) + 1)).astype(np.int64)
    real = y.sum(axis=0)
    targets = class_targets(real.tolist(), quota)
    pairs = multi_label_vectors(y, targets, recipe_seed=seed)
    added = np.sum([v for _, v in pairs], axis=0) if pairs else np.zeros(k, np.int64)
    final = real + added
    # every class reaches its target and over-shoot is zero
    assert np.all(final == np.maximum(targets, real)), (final, targets, real)
    # image count bounded by total deficit and at least the largest deficit
    deficit = np.maximum(np.asarray(targets) - real, 0)
    assert deficit.max() <= len(pairs) <= deficit.sum()
    # every vector contains its driving class; non-one-hot vectors are real training vectors
    real_set = {tuple(r) for r in y}
    for c, v in pairs:
        assert v[c] == 1
        assert v.sum() == 1 or tuple(v) in real_set


def test_multi_label_uses_cooccurrence_and_is_deterministic():
    # class 1 always appears with class 2 in the real data; both are equally short -> real pairs are used
    y = np.array([[1, 0, 0]] * 10 + [[0, 1, 1]] * 2)
    pairs = multi_label_vectors(y, [10, 10, 10], recipe_seed=0)
    assert len(pairs) == 8  # 8 images of [0,1,1] reach both targets; one-hot would need 16
    assert all(tuple(v) == (0, 1, 1) for _, v in pairs)
    assert [(c, tuple(v)) for c, v in pairs] == [(c, tuple(v)) for c, v in multi_label_vectors(y, [10, 10, 10], 0)]


def test_multi_label_falls_back_to_one_hot_when_no_real_vector_fits():
    # class 1 occurs only together with the head class 0, which is already at its target
    y = np.array([[1, 0]] * 10 + [[1, 1]] * 2)
    pairs = multi_label_vectors(y, [12, 12], recipe_seed=0)
    assert len(pairs) == 10 and all(tuple(v) == (0, 1) for _, v in pairs)


def test_multi_label_jobs_have_unique_ids_and_seeds():
    y = np.array([[1, 0, 0]] * 6 + [[0, 1, 1]] * 1 + [[0, 0, 1]] * 2)
    jobs = multi_label_jobs(["a", "b", "c"], y, [6, 6, 6], recipe_seed=3)
    assert len({j.id for j in jobs}) == len(jobs) == len({j.seed for j in jobs})


def test_build_plan_groups_and_totals():
    ls = LabelSpace(("big", "mid", "tiny"), multi_label=False)
    y = np.eye(3, dtype=np.int64)[[0] * 12 + [1] * 5 + [2] * 1]
    plan = build_plan(ls, y, "to_head", 0, (3, 10))
    assert [c.group for c in plan.classes] == ["head", "medium", "tail"]
    assert [c.to_generate for c in plan.classes] == [0, 7, 11]
    assert plan.num_images == 18
    assert math.isclose(sum(c.real + c.to_generate for c in plan.classes), 36)
