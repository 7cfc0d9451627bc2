import numpy as np
import pytest
import torch

from medlt import metrics as M


def test_nearest_neighbours_chunked_equals_full():
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(130, 7, generator=g), torch.randn(210, 7, generator=g)
    d, i = M.nearest_neighbours(q, r, chunk=32)
    full = torch.cdist(q.double(), r.double())
    assert torch.equal(i, full.argmin(1))
    assert torch.allclose(d.double(), full.min(1).values, atol=1e-5)
    ds, is_ = M.nearest_neighbours(r, r, chunk=50, exclude_self=True)
    full = torch.cdist(r.double(), r.double()).fill_diagonal_(float("inf"))
    assert torch.equal(is_, full.argmin(1))
    assert not torch.equal(is_, torch.arange(210))


def test_memorization_flags_planted_near_copy():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(200, 16, generator=g)
    real_ids = [f"r{i}" for i in range(200)]
    names = ["a", "b"]
    acc = M.MemorizationAccumulator(real, real_ids, names, percentile=5.0, top_k=3, chunk=64)
    thr = acc.threshold
    assert thr > 0
    syn = torch.randn(100, 16, generator=g) * 1.0 + 3.0  # far from the real set
    syn[17] = real[42] + 1e-3  # planted near-copy of a training image
    labels = torch.zeros(100, dtype=torch.long)
    labels[50:] = 1
    ids = [f"s{i}" for i in range(100)]
    acc.update(syn[:60], labels[:60], ids[:60])
    acc.update(syn[60:], labels[60:], ids[60:])
    out = acc.compute()
    assert out["near_copies_overall"] == 1
    assert out["per_class_near_copies"] == {"a": 1, "b": 0}
    assert out["per_class_near_copy_share"]["a"] == pytest.approx(1 / 50)
    worst = out["closest_pairs"][0]
    assert (worst["synthetic_id"], worst["real_id"], worst["near_copy"]) == ("s17", "r42", True)
    assert len(out["closest_pairs"]) == 3
    assert out["closest_pairs"][1]["distance"] >= worst["distance"]


def test_real_threshold_is_percentile_of_self_excluded_nn():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(80, 4, generator=g)
    full = torch.cdist(real.double(), real.double()).fill_diagonal_(float("inf")).min(1).values
    assert M.real_nn_threshold(real, 5.0, chunk=16) == pytest.approx(np.percentile(full.numpy(), 5.0), rel=1e-5)


def test_diversity_identical_images_score_one_and_noise_scores_lower():
    from monai.metrics import MultiScaleSSIMMetric

    g = torch.Generator().manual_seed(3)
    base = torch.rand(1, 32, 32, generator=g) * 2 - 1
    same = base.expand(6, 1, 32, 32).clone()
    noisy = (torch.rand(6, 1, 32, 32, generator=g) * 2 - 1)
    div = M.ClassDiversity(["same", "noisy", "single"], max_pairs=10)
    div.update(same, torch.zeros(6, dtype=torch.long))
    div.update(noisy, torch.ones(6, dtype=torch.long))
    div.update(noisy[:1], torch.full((1,), 2))
    out = div.compute()
    assert out["per_class_ms_ssim"]["same"] == pytest.approx(1.0, abs=1e-5)
    assert out["per_class_ms_ssim"]["noisy"] < 0.5
    assert out["per_class_ms_ssim"]["single"] is None
    assert out["per_class_pairs"]["noisy"] == 10
    # same settings through MONAI directly on one pair
    m = MultiScaleSSIMMetric(spatial_dims=2, data_range=2.0, kernel_size=3, weights=(0.3, 0.4, 0.3))
    assert float(m(noisy[:1], noisy[1:2])) <= 1.0


def test_diversity_3d_volumes():
    g = torch.Generator().manual_seed(4)
    vols = torch.rand(3, 1, 32, 32, 16, generator=g) * 2 - 1
    div = M.ClassDiversity(["x"])
    div.update(vols, torch.tensor([[1.0], [1.0], [1.0]]))
    out = div.compute()
    assert out["per_class_pairs"]["x"] == 3
    assert out["per_class_ms_ssim"]["x"] is not None
