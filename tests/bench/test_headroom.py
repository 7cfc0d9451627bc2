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
