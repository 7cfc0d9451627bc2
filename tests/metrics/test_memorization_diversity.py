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
    acc = M.MemorizationAccumulator(real, real_ids, names, ["head", "tail"], top_k=3, chunk=64)
    syn = torch.randn(100, 16, generator=g) * 1.0 + 3.0  # far from the real set
    syn[17] = real[42] + 1e-3  # planted near-copy of a training image
    labels = torch.zeros(100, dtype=torch.long)
    labels[50:] = 1
    ids = [f"s{i}" for i in range(100)]
    acc.update(syn[:60], labels[:60], ids[:60])
    acc.update(syn[60:], labels[60:], ids[60:])
    out = acc.compute()
    assert out["overall"]["n_flagged"] == 1 and out["overall"]["n_synthetic"] == 100
    assert out["per_class"]["a"]["n_flagged"] == 1 and out["per_class"]["b"]["n_flagged"] == 0
    assert out["per_class"]["a"]["flagged_rate"] == pytest.approx(1 / 50)
    assert out["per_group"]["head"]["n_flagged"] == 1 and out["per_group"]["tail"]["n_synthetic"] == 50
    worst = out["closest_pairs"][0]
    assert (worst["synthetic_id"], worst["real_id"], worst["flagged"]) == ("s17", "r42", True)
    # the ratio is d(s, r*) / d(r*, nearest other real), by definition
    nn_r42 = torch.cdist(real[42:43].double(), real.double())[0]
    nn_r42[42] = float("inf")
    assert worst["distance_real_nearest_other_real"] == pytest.approx(float(nn_r42.min()), rel=1e-5)
    assert worst["ratio"] == pytest.approx(worst["distance_synthetic_real"] / float(nn_r42.min()), rel=1e-5)
    assert len(out["closest_pairs"]) == 3
    assert out["closest_pairs"][1]["ratio"] >= worst["ratio"]
    assert sum(out["ratio_histogram"]["counts"]) == 100



def test_per_image_csv_lists_every_synthetic_image(tmp_path):
    """Every synthetic image's nearest real id, both distances, ratio and flag, in the order fed;
    the numbers are the definition's (cdist), a multi-label image lists all its classes."""
    import pandas as pd

    g = torch.Generator().manual_seed(4)
    real = torch.randn(50, 8, generator=g)
    acc = M.MemorizationAccumulator(real, [f"r{i}" for i in range(50)], ["a", "b", "c"], chunk=16)
    syn = torch.randn(7, 8, generator=g) + 2.0
    syn[3] = real[9] + 1e-3  # near-copy of r9
    syn[5] = real[20]  # exact copy of r20
    labels = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    acc.update(syn[:4], labels[:4], [f"s{i}" for i in range(4)])
    acc.update(syn[4:], labels[4:], [f"s{i}" for i in range(4, 7)])
    path = acc.write_per_image_csv(tmp_path / "memo" / "per_image.csv", images={"s3": "images/s3.png"})
    df = pd.read_csv(path, keep_default_na=False)
    assert list(df.columns) == ["synthetic_id", "synthetic_image", *M.memorization.PER_IMAGE_COLUMNS]
    assert df["synthetic_id"].tolist() == [f"s{i}" for i in range(7)] and df["synthetic_image"][3] == "images/s3.png"
    assert df["classes"].tolist()[:2] == ["a", "b|c"]
    full = torch.cdist(syn.double(), real.double())
    rr = torch.cdist(real.double(), real.double()).fill_diagonal_(float("inf")).min(1).values
    nn = full.argmin(1)
    assert df["nearest_real_id"].tolist() == [f"r{int(i)}" for i in nn]
    assert np.allclose(df["distance_synthetic_real"], full.min(1).values.numpy(), rtol=1e-5)
    assert np.allclose(df["distance_real_nearest_other_real"], rr[nn].numpy(), rtol=1e-5)
    ratio = df["ratio"].astype(float).to_numpy()
    expect = (full.min(1).values / rr[nn]).numpy()
    expect[5] = 0.0  # exact copy
    assert np.allclose(ratio, expect, rtol=1e-4, atol=1e-7)
    assert df["flagged"].tolist() == [int(v <= 0.5) for v in expect] and df["flagged"].tolist().count(1) == 2
    assert df["exact_copy"].tolist() == [0, 0, 0, 0, 0, 1, 0] and set(df["ratio_threshold"]) == {0.5}
    assert not list((tmp_path / "memo").glob(".*.tmp"))  # written atomically, nothing left behind

def _long_tailed_real(g, d=32):
    """1500 dense head images (SD 0.3), 12 sparse tail images (SD 1) around another mean."""
    head = 0.3 * torch.randn(1500, d, generator=g)
    tail = torch.randn(12, d, generator=g) + 4.0
    return torch.cat([head, tail]), torch.cat([torch.zeros(1500, dtype=torch.long), torch.ones(12, dtype=torch.long)])


def test_jittered_tail_copies_flagged_independent_samples_not():
    g = torch.Generator().manual_seed(2)
    real, ry = _long_tailed_real(g)
    acc = M.MemorizationAccumulator(real, [f"r{i}" for i in range(len(real))], ["head", "tail"], ["head", "tail"])
    tail = real[ry == 1]
    copies = tail.repeat(10, 1) + 0.3 * torch.randn(120, 32, generator=g)  # |jitter| ~ 1.7
    r = acc.ratios(copies)
    assert float(r["flagged"].float().mean()) >= 0.9
    # the old global rule (5th percentile of real-to-real NN distances, set by the dense head) misses them
    old = float(np.percentile(torch.cdist(real, real).fill_diagonal_(float("inf")).min(1).values.numpy(), 5))
    assert float((r["distance"] < old).float().mean()) < 0.1
    fresh = torch.cat([0.3 * torch.randn(300, 32, generator=g), torch.randn(300, 32, generator=g) + 4.0])
    assert float(acc.ratios(fresh)["flagged"].float().mean()) < 0.05


def test_exact_duplicates_in_the_real_set_do_not_hide_copies():
    g = torch.Generator().manual_seed(3)
    real, ry = _long_tailed_real(g)
    dup = torch.cat([real, real[:100], real[ry == 1]])  # 8% of the rows are exact duplicates
    acc = M.MemorizationAccumulator(dup, [f"r{i}" for i in range(len(dup))], ["x"])
    out_dup = acc.n_real_duplicates
    assert out_dup >= 2 * 112 - 1
    tail = real[ry == 1]
    copies = tail.repeat(5, 1) + 0.3 * torch.randn(60, 32, generator=g)
    assert float(acc.ratios(copies)["flagged"].float().mean()) >= 0.9
    exact = acc.ratios(real[:5])
    assert bool(exact["exact"].all()) and bool(exact["flagged"].all()) and float(exact["ratio"].max()) == 0.0
    acc.update(real[:5], torch.zeros(5, dtype=torch.long), [f"s{i}" for i in range(5)])
    out = acc.compute()
    assert out["overall"]["n_exact_copies"] == 5 and out["closest_pairs"][0]["exact_copy"]


def test_nearest_neighbours_min_distance_skips_identical_rows():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    d, i = M.nearest_neighbours(x, x, exclude_self=True, min_distance=1e-6)
    assert d.tolist() == [5.0, 5.0, 5.0] and i.tolist() == [2, 2, 0]
    d, i = M.nearest_neighbours(x[:2], x[:2], exclude_self=True, min_distance=1e-6)
    assert torch.isinf(d).all() and (i == -1).all()


@pytest.mark.parametrize("side,kernel,scales", [(256, 11, 5), (176, 11, 5), (175, 11, 4), (64, 11, 3), (32, 11, 2),
                                                (16, 11, 1), (8, 7, 1)])
def test_ms_ssim_settings_follow_the_image_size(side, kernel, scales):
    from monai.metrics import MultiScaleSSIMMetric

    s = M.ms_ssim_settings((side, side))
    assert (s["kernel_size"], s["scales"]) == (kernel, scales)
    assert s["standard_ms_ssim"] == (scales == 5)
    if scales == 5:
        assert s["weights"] == [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    assert sum(s["weights"]) == pytest.approx(1.0, abs=2e-4)  # the standard five sum to 1.0001
    # MONAI accepts the settings at this size and gives 1 for identical images
    x = torch.rand(1, 1, side, side) * 2 - 1
    m = MultiScaleSSIMMetric(spatial_dims=2, data_range=2.0, kernel_size=s["kernel_size"], weights=s["weights"])
    assert float(m(x, x)) == pytest.approx(1.0, abs=1e-4)


def test_ms_ssim_settings_explicit_and_impossible():
    s = M.ms_ssim_settings((16, 16, 8), None, [0.5, 0.5])
    assert s["kernel_size"] == 3 and s["chosen"] == "recipe+automatic"
    assert M.ms_ssim_settings((64, 64), 3, None)["scales"] == 5  # 64 // 16 = 4 >= 3
    with pytest.raises(ValueError, match="too small"):
        M.ms_ssim_settings((64, 64), 11, [0.2] * 5)


def test_diversity_identical_images_score_one_and_noise_scores_lower():
    from monai.metrics import MultiScaleSSIMMetric

    g = torch.Generator().manual_seed(3)
    base = torch.rand(1, 32, 32, generator=g) * 2 - 1
    same = base.expand(6, 1, 32, 32).clone()
    noisy = (torch.rand(6, 1, 32, 32, generator=g) * 2 - 1)
    div = M.ClassDiversity(["same", "noisy", "single"], kernel_size=3, weights=(0.3, 0.4, 0.3), max_pairs=10)
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
    assert out["settings"]["kernel_size"] == 11 and out["settings"]["scales"] == 1  # 16-px side: one scale


def test_diversity_auto_settings_recorded_for_2d():
    g = torch.Generator().manual_seed(5)
    div = M.ClassDiversity(["x"], max_pairs=3)
    div.update(torch.rand(3, 1, 64, 64, generator=g) * 2 - 1, torch.zeros(3, dtype=torch.long))
    s = div.compute()["settings"]
    assert (s["kernel_size"], s["scales"], s["chosen"]) == (11, 3, "automatic")
