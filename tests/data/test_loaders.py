"""build_dataset / build_dataloader: persistent cache, balanced sampling, multi-label batches."""

import numpy as np
import torch

from medlt.data.loaders import build_dataloader, build_dataset
from medlt.data.samplers import ClassBalancedSampler
from tests.data.builders import CT_SPLITS, recipe, write_ct_rate, write_nih


def test_persistent_cache_is_reused_and_invalidated(tmp_path):
    write_nih(tmp_path / "d")
    r = recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "d"), image_size=[24, 20],
               cache_dir=str(tmp_path / "cache"))
    ds = build_dataset(r, "train")
    first = [ds[i]["image"] for i in range(3)]
    files = sorted((tmp_path / "cache").rglob("*.pt"))
    assert len(files) == 3
    again = build_dataset(r, "train")
    assert all(torch.equal(a, again[i]["image"]) for i, a in enumerate(first))
    assert sorted((tmp_path / "cache").rglob("*.pt")) == files  # nothing recomputed
    # an edited image is re-processed, not served stale from the cache
    import time

    from medlt.data.io import write_png

    time.sleep(0.01)
    write_png(tmp_path / "d" / "train_0000.png", np.zeros((48, 40), np.float32))
    edited = build_dataset(r, "train")[0]["image"]
    assert torch.all(edited == -1) and not torch.equal(edited, first[0])
    files = sorted((tmp_path / "cache").rglob("*.pt"))
    # another size -> another cache folder, never a stale hit
    r2 = recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "d"), image_size=[16, 16],
                cache_dir=str(tmp_path / "cache"))
    assert build_dataset(r2, "train")[0]["image"].shape == (1, 16, 16)
    assert len({p.parent for p in (tmp_path / "cache").rglob("*.pt")}) == 2
    assert len(files) == 4


def test_dataloader_shuffle_seeded_and_balanced(tmp_path):
    write_nih(tmp_path / "d")
    r = recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "d"), image_size=[16, 16])
    b1 = next(iter(build_dataloader(r, "train", 8, shuffle=True, seed=4)))
    b2 = next(iter(build_dataloader(r, "train", 8, shuffle=True, seed=4)))
    assert b1["image"].shape == (8, 1, 16, 16) and b1["label"].dtype == torch.int64
    assert b1["id"] == b2["id"] and b1["id"] != [f"train_{k:04d}.png" for k in range(8)]
    plain = next(iter(build_dataloader(r, "val", 4, shuffle=False)))
    assert plain["id"] == [f"balanced-val_{k:04d}.png" for k in range(4)]
    bal = build_dataloader(r, "train", 4, shuffle=True, balanced_q=0.0)
    assert isinstance(bal.sampler, ClassBalancedSampler) and len(bal.sampler) == 24


def test_multi_label_ct_batches(tmp_path):
    write_ct_rate(tmp_path / "ct", shape=(12, 10, 6))
    r = recipe(tmp_path, format="ct-rate", root=str(tmp_path / "ct"), splits=CT_SPLITS, image_size=[8, 8, 4],
               ct={"spacing_mm": [2.0, 2.0, 4.0], "crop_size": None})
    dl = build_dataloader(r, "train", 2, shuffle=True, balanced_q=0.5)
    assert isinstance(dl.sampler, ClassBalancedSampler)
    assert not isinstance(build_dataloader(r, "train", 2, shuffle=True).sampler, ClassBalancedSampler)
    b = next(iter(dl))
    assert b["image"].shape == (2, 1, 8, 8, 4) and b["image"].dtype == torch.float32
    assert b["label"].shape == (2, 18) and b["label"].dtype == torch.float32
    assert set(np.unique(b["label"].numpy())) <= {0.0, 1.0}


def test_distributed_sampler_under_torch_distributed(tmp_path):
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    write_nih(tmp_path / "d")
    r = recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "d"), image_size=[16, 16])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        dl = build_dataloader(r, "train", 4, shuffle=True, seed=1)
        assert isinstance(dl.sampler, DistributedSampler) and dl.sampler.seed == 1
        bal = build_dataloader(r, "train", 4, shuffle=True, balanced_q=0.5)
        assert isinstance(bal.sampler, ClassBalancedSampler) and bal.sampler.world_size == 1
    finally:
        dist.destroy_process_group()
