"""End to end for each layout, as a new user would: `medlt phantom` -> shipped phantom recipe with
--set data.root/labels -> load_table -> validate (clean) -> build_dataset items (shapes, ranges,
label types) -> data stats."""

import json

import pytest
import torch

from medlt.cli import main
from medlt.data.loaders import build_dataset
from medlt.data.table import load_table
from medlt.data.validate import validate
from medlt.recipe import load_recipe

LAYOUTS = {
    "nih-cxr-lt": ("nih_cxr_lt.yaml", (1, 32, 32), 20, False),
    "mimic-cxr-lt": ("mimic_cxr_lt.yaml", (1, 32, 32), 19, False),
    "ct-rate": ("ct_rate.yaml", (1, 32, 32, 16), 18, True),
}


def _cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    assert (e.value.code or 0) == 0, out.err
    return out.out


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_phantom_to_dataset(layout, tmp_path, repo_root, capsys):
    recipe_name, shape, k, multi = LAYOUTS[layout]
    out = tmp_path / layout
    _cli(["phantom", "--layout", layout, "--out", str(out), "--num-images", "40", "--image-size", "32"], capsys)
    sets = [f"data.root={out}", f"data.labels={out}"]
    r = load_recipe(repo_root / "recipes" / "phantom" / recipe_name, sets)
    table = load_table(r)
    assert table.label_space.num_classes == k and table.label_space.multi_label == multi
    counts = table.class_counts("train")
    assert max(counts) > min(counts)  # long-tailed
    assert validate(r, show_progress=False) == []
    ds = build_dataset(r, "train")
    for i in (0, len(ds) - 1):
        x = ds[i]
        assert tuple(x["image"].shape) == shape and x["image"].dtype == torch.float32
        assert -1.0 <= float(x["image"].min()) < float(x["image"].max()) <= 1.0
        if multi:
            assert x["label"].shape == (k,) and x["label"].dtype == torch.float32
        else:
            assert x["label"].ndim == 0 and x["label"].dtype == torch.int64
    if layout == "ct-rate":  # air outside the body ~ -1, soft tissue ~ 0 in the middle of the volume
        vol = ds[0]["image"][0]
        assert float(vol[0, 0, 8]) < -0.9 and -0.3 < float(vol[16, 8:24, 8].median()) < 0.3
    stats = json.loads(_cli(["data", "stats", str(repo_root / "recipes/phantom" / recipe_name), "--json",
                             "--set", sets[0], "--set", sets[1]], capsys))
    assert stats["splits"][r.data.splits.train]["counts"] == dict(zip(table.label_space.names, counts, strict=True))
    assert stats["imbalance_ratio"] > 1


def test_nih_multi_label_phantom(tmp_path, repo_root, capsys):
    out = tmp_path / "nih-ml"
    _cli(["phantom", "--layout", "nih-cxr-lt", "--out", str(out), "--num-images", "30", "--image-size", "32",
          "--multi-label"], capsys)
    r = load_recipe(repo_root / "recipes/phantom/nih_cxr_lt.yaml",
                    [f"data.root={out}", f"data.labels={out}", "data.multi_label=true",
                     "data.splits.val=val", "data.splits.test=test", "data.splits.test_longtail=null"])
    assert validate(r, check_images=False, show_progress=False) == []
    ds = build_dataset(r, "val")
    assert ds[0]["label"].shape == (20,) and ds.labels.sum(1).min() >= 1
