"""`medlt synth --drop-near-copies`: images that copy a real training image are never written, are
re-drawn with fresh (pure-function) seeds until the quota is met, and are recorded in manifest.csv
and dropped.csv; an interrupted run resumes to the same bytes."""

import json

import pandas as pd
import pytest
import torch

from medlt.data.labels import LabelSpace
from medlt.errors import MedltError
from medlt.synth.generate import run_synth
from medlt.synth.jobs import noise_seed
from tests.cli_run import run_cli
from tests.synth.fakes import FakeGenerator, dies_on_call

NIH = LabelSpace.official("nih-cxr-lt")
REAL_COUNTS = [5, 2, 1] + [3] * 17


class _Pool(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)


def _extractor(path):
    """A TorchScript feature extractor written at test time: the image pooled to 8 x 8."""
    torch.jit.script(_Pool()).save(str(path))
    return path


class CopyingGenerator(FakeGenerator):
    """FakeGenerator, except that every seed divisible by 3 returns a real training image of its
    class (exactly, or with a small jitter for seeds divisible by 6): a model that copies patients."""

    def __init__(self, label_space, real_images, real_labels):
        super().__init__(label_space)
        self.real = torch.nn.functional.adaptive_avg_pool2d(real_images, 8)
        self.real_labels = real_labels
        self.copied: dict[int, int] = {}  # seed -> index of the copied real image

    def generate(self, labels, seeds, **kw):
        x = super().generate(labels, seeds, **kw)
        for i, (lab, s) in enumerate(zip(torch.as_tensor(labels), seeds, strict=True)):
            if s % 3 == 0:
                same = (self.real_labels == int(lab)).nonzero().flatten()
                k = int(same[s % len(same)]) if len(same) else s % len(self.real)
                jitter = 0.002 * torch.randn(self.real[k].shape, generator=torch.Generator().manual_seed(s))
                x[i] = self.real[k] + (jitter if s % 6 == 0 else 0)
                self.copied[int(s)] = k
        return x


def _write_nih(root, counts, rng):
    """A real NIH-CXR-LT folder (8 x 8 PNGs of noise, the official split CSVs)."""
    from medlt.data.io import write_png

    root.mkdir(parents=True)
    splits = {"train": counts, "balanced-val": [1] * 20, "test": [1] * 20, "balanced-test": [1] * 20}
    for split, per_class in splits.items():
        rows = []
        for c, n in enumerate(per_class):
            for _ in range(n):
                ident = f"{split}_{len(rows):04d}.png"
                write_png(root / ident, rng.random((8, 8)))
                rows.append({"id": ident, **{m: int(m == NIH.names[c]) for m in NIH.names},
                             "subject_id": f"{split}-{len(rows)}"})
        pd.DataFrame(rows).to_csv(root / f"nih-cxr-lt_single-label_{split}.csv", index=False)


@pytest.fixture
def world(tmp_path):
    import numpy as np

    from medlt.data.loaders import build_dataset
    from medlt.recipe.load import recipe_from_dict

    _write_nih(tmp_path / "real", REAL_COUNTS, np.random.default_rng(0))
    rec = recipe_from_dict({"name": "nc", "seed": 7, "data": {
        "format": "nih-cxr-lt", "root": str(tmp_path / "real"), "labels": str(tmp_path / "real"),
        "image_size": [8, 8], "group_thresholds": [3, 6]}}, base_dir=tmp_path)
    real = build_dataset(rec, "train")
    imgs = torch.stack([torch.as_tensor(real[i]["image"]) for i in range(len(real))]).float()
    labels = torch.tensor([int(real[i]["label"]) for i in range(len(real))])
    ids = [str(real[i]["id"]) for i in range(len(real))]
    return rec, None, imgs, labels, ids, _extractor(tmp_path / "pool.pt")


def test_near_copies_are_dropped_redrawn_and_recorded(world, tmp_path):
    rec, tab, imgs, labels, ids, ext = world
    gen = CopyingGenerator(NIH, imgs, labels)
    out = tmp_path / "out"
    res = run_synth(rec, out, generator=gen, table=tab, quota="to_head", batch_size=4, near_copies=ext,
                    show_progress=False)
    man = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert len(man) == res.plan.num_images  # the quota is met exactly
    counts = man[list(NIH.names)].astype(int).sum(axis=0).tolist()
    assert [c + r for c, r in zip(counts, REAL_COUNTS, strict=True)] == [5] * 20
    assert all(int(s) % 3 for s in man["seed"])  # no copied image was kept
    assert len(list(out.rglob("*.png"))) == len(man)  # and none was written
    dropped = pd.read_csv(out / "dropped.csv", dtype=str, keep_default_na=False)
    copied = {s for s in gen.copied}
    assert sorted(int(s) for s in dropped["seed"]) == sorted(copied) and len(dropped) >= 10
    assert set(dropped["reason"]) == {"near-copy"}
    for _, d in dropped.iterrows():  # the nearest real image is the one copied; exact copies have ratio 0
        assert d["nearest_real_id"] == ids[gen.copied[int(d["seed"])]]
        assert float(d["ratio"]) <= 0.5 and (d["exact_copy"] == "1") == (int(d["seed"]) % 6 != 0)
    # every re-draw names what it replaces; its seed is the key's next index (a pure function)
    redrawn = man[man["redraw_attempt"] != "0"]
    assert set(redrawn["replaces"]) <= set(dropped["id"]) and len(redrawn) > 0
    assert set(dropped["replaced_by"]) - {""} <= set(dropped["id"]) | set(man["id"])
    job = {j.id: j for j in res.final_jobs}
    for _, r in redrawn.iterrows():
        j = job[r["id"]]
        assert j.replaces == r["replaces"] and int(r["seed"]) == noise_seed(rec.seed, j.key, j.index)
        assert j.index >= sum(1 for p in res.plan.jobs if p.key == j.key)  # a fresh index, not a planned one
    assert man[man["redraw_attempt"] == "0"]["replaces"].eq("").all()
    plan = json.loads((out / "plan.json").read_text())
    assert sum(plan["near_copies_dropped"].values()) == len(dropped)
    s = plan["settings"]["near_copies"]
    assert s["feature_extractor"].startswith("torchscript:pool.pt@") and s["ratio_threshold"] == 0.5


def test_interrupted_run_resumes_to_the_same_bytes(world, tmp_path):
    rec, tab, imgs, labels, _, ext = world
    kw = dict(table=tab, quota="to_head", batch_size=4, near_copies=ext, show_progress=False)
    run_synth(rec, tmp_path / "a", generator=CopyingGenerator(NIH, imgs, labels), **kw)

    Dies = dies_on_call(CopyingGenerator, 7)
    with pytest.raises(KeyboardInterrupt):
        run_synth(rec, tmp_path / "b", generator=Dies(NIH, imgs, labels), **kw)
    gen = CopyingGenerator(NIH, imgs, labels)
    run_synth(rec, tmp_path / "b", generator=gen, **kw)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert any(f.name == "dropped.csv" for f in files)
    for f in files:  # images, manifests, dropped.csv, plan.json, the filter records (not the folder's own path)
        if f.name != "merged.recipe.yaml":
            assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    # a resume with another near-copy setting is refused
    with pytest.raises(MedltError, match="near_copies"):
        run_synth(rec, tmp_path / "b", generator=gen, **{**kw, "near_copies": None})


def test_cli_missing_extractor_is_one_line_before_any_work(world, tmp_path, capsys):
    rec, *_ = world
    import yaml

    from medlt.recipe import recipe_to_dict

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_to_dict(rec)))
    code, _, err = run_cli(["synth", path, "--checkpoint", tmp_path / "nope.pt", "--out", tmp_path / "o",
                            "--drop-near-copies", tmp_path / "missing.pt"], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "--drop-near-copies" in lines[0] and "missing.pt" in lines[0]
    assert not (tmp_path / "o").exists()


def test_synth_help_names_the_privacy_risk(capsys):
    code, out, _ = run_cli(["synth", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "--drop-near-copies" in text and "privacy leak" in text


class AlwaysCopyingGenerator(CopyingGenerator):
    """Every image is an exact copy of a real training image of its class."""

    def generate(self, labels, seeds, **kw):
        return super().generate(labels, [s - s % 6 + 3 for s in seeds], **kw)


def test_giving_up_names_only_the_filter_used_and_writes_dropped_csv(world, tmp_path):
    rec, tab, imgs, labels, ids, ext = world
    rec.synth.filter_max_rounds = 1
    out = tmp_path / "out"
    with pytest.raises(MedltError) as e:
        run_synth(rec, out, generator=AlwaysCopyingGenerator(NIH, imgs, labels), table=tab, quota="to_head",
                  batch_size=4, near_copies=ext, show_progress=False)
    msg = str(e.value)
    assert "--min-confidence" not in msg and "classifier" not in msg  # no quality filter was given
    assert "accepted images so far stay" not in msg and "no image was accepted" in msg
    assert "near-copies of real training images" in msg and "dropped.csv" in msg and len(msg.splitlines()) == 1
    dropped = pd.read_csv(out / "dropped.csv", dtype=str, keep_default_na=False)
    plan = json.loads((out / "plan.json").read_text())
    assert len(dropped) == plan["num_images"] and set(dropped["reason"]) == {"near-copy"}
    assert not list(out.rglob("*.png")) and not (out / "manifest.csv").exists()
