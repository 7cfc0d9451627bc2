"""Share of the headroom closed: a ratio of two paired means from the same bootstrap resamples."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from medlt.bench.paired_mean import share_of_headroom
from medlt.data.labels import LabelSpace
from medlt.metrics.bootstrap import stratified_weights

LS = LabelSpace(("a", "b", "c", "d"), False)
GROUPS = ["head", "head", "medium", "tail"]


def _preds(rng, true, acc):
    p = true.copy()
    flip = rng.random(true.size) > acc
    p[flip] = rng.integers(0, 4, flip.sum())
    return {"true": true, "predicted": p}


def _bacc_w(true, pred, w):
    # weighted balanced accuracy: mean over classes of the weighted recall
    rec = [np.sum(w[(true == c)] * (pred[true == c] == c)) / np.sum(w[true == c]) for c in range(4)]
    return float(np.mean(rec))


def test_share_point_value_and_interval_match_an_independent_bootstrap():
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(4), 40)
    copies = [_preds(rng, true, 0.5), _preds(rng, true, 0.55)]
    ideal = [_preds(rng, true, 0.9), _preds(rng, true, 0.85)]
    method = [_preds(rng, true, 0.7), _preds(rng, true, 0.65)]
    out = share_of_headroom([(copies[k], method[k]) for k in range(2)], [(copies[k], ideal[k]) for k in range(2)],
                            LS, GROUPS, n_resamples=300, seed=5)
    ba = lambda p: balanced_accuracy_score(true, p["predicted"])  # noqa: E731
    head = np.mean([ba(ideal[k]) - ba(copies[k]) for k in range(2)])
    num = np.mean([ba(method[k]) - ba(copies[k]) for k in range(2)])
    h = out["headline"]
    assert h["headroom"]["difference"] == pytest.approx(head)
    assert h["shown"] and h["headroom"]["interval"][0] > 0
    assert h["share"]["value"] == pytest.approx(num / head)
    # independent bootstrap with the same resample weights (same generator, same stratification)
    w = stratified_weights(true, 300, np.random.default_rng(5))
    ratios, heads = [], []
    for r in range(300):
        hd = np.mean([_bacc_w(true, ideal[k]["predicted"], w[r]) - _bacc_w(true, copies[k]["predicted"], w[r])
                      for k in range(2)])
        nm = np.mean([_bacc_w(true, method[k]["predicted"], w[r]) - _bacc_w(true, copies[k]["predicted"], w[r])
                      for k in range(2)])
        heads.append(hd)
        ratios.append(nm / hd)
    assert h["share"]["interval"] == pytest.approx(list(np.quantile(ratios, [0.025, 0.975])), abs=1e-9)
    assert h["headroom"]["interval"] == pytest.approx(list(np.quantile(heads, [0.025, 0.975])), abs=1e-9)


def test_no_headroom_no_share():
    rng = np.random.default_rng(1)
    true = np.repeat(np.arange(4), 30)
    copies = _preds(rng, true, 0.7)
    ideal = {"true": true, "predicted": copies["predicted"].copy()}  # a perfect set that adds nothing
    method = _preds(rng, true, 0.6)
    out = share_of_headroom([(copies, method)], [(copies, ideal)], LS, GROUPS, n_resamples=100, seed=0)
    assert out["headline"]["headroom"]["difference"] == 0.0
    assert out["headline"]["shown"] is False and out["headline"]["share"] is None


def test_share_interval_keeps_resamples_with_zero_headroom():
    """Resamples where the ideal arm adds exactly nothing give an infinite share; dropping them would
    narrow the interval. The interval must be the quantiles of ALL resamples' ratios."""
    true = np.repeat(np.arange(4), 20)
    rng = np.random.default_rng(3)
    copies = _preds(rng, true, 0.6)
    ideal = {"true": true, "predicted": copies["predicted"].copy()}
    wrong_a = np.flatnonzero((true == 0) & (copies["predicted"] != 0))[:5]
    ideal["predicted"][wrong_a] = 0  # ideal beats copies on a few images of class a only
    method = {"true": true, "predicted": copies["predicted"].copy()}
    method["predicted"][wrong_a] = 0  # the method closes those too, and gains on two tail images
    method["predicted"][np.flatnonzero((true == 3) & (copies["predicted"] != 3))[:2]] = 3
    b, seed = 2000, 4
    out = share_of_headroom([(copies, method)], [(copies, ideal)], LS, GROUPS, n_resamples=b, seed=seed)
    h = out["headline"]
    assert h["shown"]
    w = stratified_weights(true, b, np.random.default_rng(seed))
    nums = np.array([_bacc_w(true, method["predicted"], w[r]) - _bacc_w(true, copies["predicted"], w[r])
                     for r in range(b)])
    dens = np.array([_bacc_w(true, ideal["predicted"], w[r]) - _bacc_w(true, copies["predicted"], w[r])
                     for r in range(b)])
    zero = dens == 0
    assert 0 < zero.sum() < 0.025 * b and np.any(nums[zero] > 0)  # a few resamples without headroom
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = nums / dens  # +inf where the headroom is 0 and the method gained; 0/0 is undefined
    undefined = np.isnan(ratios)  # it could be anything: it counts against both ends
    want = [np.quantile(np.where(undefined, -np.inf, ratios), 0.025),
            np.quantile(np.where(undefined, np.inf, ratios), 0.975)]
    assert h["share"]["interval"] == pytest.approx(want, abs=1e-9)
    dropped = np.quantile(ratios[~zero], [0.025, 0.975])
    assert h["share"]["interval"][1] > dropped[1] + 0.5  # dropping them narrowed the interval
    assert h["share"]["unbounded"] == [False, False]


def test_share_interval_unbounded_is_said():
    from medlt.bench.table import _share
    from medlt.metrics.bootstrap import ratio_interval

    num = np.array([0.1, 0.2, 0.1, 0.3, 0.2, 0.0])
    den = np.array([0.2, 0.0, 0.0, 0.2, 0.1, 0.0])  # two x/0 and one 0/0 among 6 resamples
    lo, hi = ratio_interval(num, den, 0.5)
    assert hi == np.inf and np.isfinite(lo)
    assert ratio_interval(num, den, 0.95) == [-np.inf, np.inf]  # 0/0 counts against both ends
    entry = {"shown": True, "share": {"value": 0.5, "interval": [0.2, np.inf], "unbounded": [False, True]}}
    text = _share(entry)
    assert "unbounded" in text and "+∞" in text and "+0.20" in text
    # as read back from bench.json: the infinite end is null, the flag says which
    assert "unbounded" in _share({"shown": True, "share": {"value": 0.5, "interval": [0.2, None],
                                                           "unbounded": [False, True]}})


# ------------------------------------------------------------------ seed noise: the hierarchical bootstrap

def _acc_pairs(rng, true, accs):
    """Seed pairs (control, method) with the method's accuracy per pair."""
    return [(_preds(rng, true, 0.6), _preds(rng, true, a)) for a in accs]


def test_seed_interval_with_identical_seed_pairs_is_the_test_image_interval():
    from medlt.bench.paired_mean import mean_paired_difference

    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(4), 25)
    a, b = _preds(rng, true, 0.6), _preds(rng, true, 0.8)
    out = mean_paired_difference([(a, b)] * 3, LS, GROUPS, n_resamples=300, seed=2)
    for k in ("headline", "tail"):
        assert out[k]["interval_seeds_and_test_images"] == pytest.approx(out[k]["interval"], abs=1e-12)
        assert out[k]["per_pair"] == pytest.approx([out[k]["difference"]] * 3)


def test_seed_interval_is_wider_when_seed_pairs_differ_and_is_deterministic():
    from medlt.bench.paired_mean import mean_paired_difference

    rng = np.random.default_rng(1)
    true = np.repeat(np.arange(4), 50)
    pairs = _acc_pairs(rng, true, [0.95, 0.55, 0.9, 0.6])
    out = mean_paired_difference(pairs, LS, GROUPS, n_resamples=400, seed=7)
    h = out["headline"]
    (lo, hi), (slo, shi) = h["interval"], h["interval_seeds_and_test_images"]
    assert shi - slo > 2 * (hi - lo)
    assert h["significant"] and not h["significant_seeds_and_test_images"] or slo < lo
    again = mean_paired_difference(pairs, LS, GROUPS, n_resamples=400, seed=7)
    assert again["headline"] == h
    other = mean_paired_difference(pairs, LS, GROUPS, n_resamples=400, seed=8)
    assert other["headline"]["interval_seeds_and_test_images"] != h["interval_seeds_and_test_images"]
    assert other["headline"]["difference"] == h["difference"]


def test_seed_interval_matches_a_hand_computed_hierarchical_bootstrap():
    """A tiny example computed resample by resample: draw the seed pairs (the documented stream),
    take the test-image resample of the same index, average the drawn pairs' weighted bAcc differences."""
    from medlt.bench.paired_mean import mean_paired_difference
    from medlt.metrics.bootstrap import SEED_PAIR_STREAM

    rng = np.random.default_rng(5)
    true = np.repeat(np.arange(4), 6)
    pairs = _acc_pairs(rng, true, [0.9, 0.5, 0.7])
    b, seed = 50, 11
    out = mean_paired_difference(pairs, LS, GROUPS, n_resamples=b, seed=seed)
    w = stratified_weights(true, b, np.random.default_rng(seed))
    draws = np.random.default_rng([seed, SEED_PAIR_STREAM]).integers(0, 3, size=(b, 3))
    vals = []
    for r in range(b):
        d = [_bacc_w(true, pairs[i][1]["predicted"], w[r]) - _bacc_w(true, pairs[i][0]["predicted"], w[r])
             for i in draws[r]]
        vals.append(np.mean(d))
    assert out["headline"]["interval_seeds_and_test_images"] == pytest.approx(
        list(np.quantile(vals, [0.025, 0.975])), abs=1e-12)
    ba = [balanced_accuracy_score(true, q["predicted"]) - balanced_accuracy_score(true, p["predicted"])
          for p, q in pairs]
    assert out["headline"]["per_pair"] == pytest.approx(ba)
    assert out["headline"]["difference"] == pytest.approx(np.mean(ba))


def test_share_of_headroom_with_seed_noise():
    rng = np.random.default_rng(2)
    true = np.repeat(np.arange(4), 40)
    copies = [_preds(rng, true, 0.5), _preds(rng, true, 0.55)]
    ideal = [_preds(rng, true, 0.9), _preds(rng, true, 0.85)]
    method = [_preds(rng, true, 0.85), _preds(rng, true, 0.5), _preds(rng, true, 0.8), _preds(rng, true, 0.55)]
    mpairs = [(copies[i % 2], method[i]) for i in range(4)]
    out = share_of_headroom(mpairs, [(copies[k], ideal[k]) for k in range(2)], LS, GROUPS, n_resamples=300, seed=1)
    sh = out["headline"]["share"]
    (lo, hi), (slo, shi) = sh["interval"], sh["interval_seeds_and_test_images"]
    assert slo < lo and shi > hi  # generator seeds that differ widely widen the share's interval
    assert out["headline"]["headroom"]["interval_seeds_and_test_images"] is not None
    one = share_of_headroom(mpairs[:1], [(copies[0], ideal[0])], LS, GROUPS, n_resamples=100, seed=1)
    assert one["headline"]["share"]["interval_seeds_and_test_images"] is None
