"""`medlt synth --guidance-from guidance.json`: per-group scales per image, recorded per row in
manifest.csv; the multi-label rarest-group rule; the error paths; per-sample scales in generate()."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from medlt.data.labels import LabelSpace
from medlt.errors import MedltError
from medlt.synth.generate import run_synth
from medlt.synth.guidance import row_group
from medlt.synth.jobs import Job
from tests.synth.fakes import FakeGenerator, make_recipe, make_table, one_hot_rows, write_tiny_checkpoint

NIH = LabelSpace.official("nih-cxr-lt")
COUNTS = [8, 4, 1, 0] + [2] * 16  # thresholds (3, 6): head, medium, then tail classes
SCALES = {"head": 0.5, "medium": 1.0, "tail": 2.5}


def _guidance(path, sha, scales=None):
    path.write_text(json.dumps({"scales": scales or SCALES, "generator": {"checkpoint_sha256": sha}}))
    return path


def _setup(tmp_path):
    rec = make_recipe(tmp_path / "real")
    tab = make_table(tmp_path / "real", NIH, one_hot_rows(COUNTS))
    return rec, tab, FakeGenerator(NIH)


def test_each_row_gets_its_groups_scale(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    g = _guidance(tmp_path / "guidance.json", gen.checkpoint_sha256)
    res = run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_head", batch_size=8,
                    guidance_from=g, show_progress=False)
    groups = {c.name: c.group for c in res.plan.classes}
    assert {groups[NIH.names[0]], groups[NIH.names[1]], groups[NIH.names[2]]} == {"head", "medium", "tail"}
    # every generator call got one scale per image, its class's group scale
    for call in gen.calls:
        want = [SCALES[groups[NIH.names[int(c)]]] for c in call["labels"]]
        assert call["guidance_scale"] == want
    man = pd.read_csv(tmp_path / "out" / "manifest.csv")
    cls = man[list(NIH.names)].to_numpy().argmax(1)
    assert man["guidance_scale"].tolist() == [SCALES[groups[NIH.names[c]]] for c in cls]
    assert set(man["guidance_scale"]) == {1.0, 2.5}  # head needs no images under to_head
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["settings"]["guidance_scale"] == {"medium": 1.0, "tail": 2.5}
    assert plan["settings"]["guidance_from"]["sha256"]
    # resuming with other scales is refused (they fix the pixels)
    g2 = _guidance(tmp_path / "g2.json", gen.checkpoint_sha256, {**SCALES, "tail": 3.0})
    with pytest.raises(MedltError, match="guidance_scale"):
        run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_head", batch_size=8,
                  guidance_from=g2, show_progress=False)


def test_errors(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    g = _guidance(tmp_path / "guidance.json", gen.checkpoint_sha256)
    with pytest.raises(MedltError, match="exclude each other"):
        run_synth(rec, tmp_path / "o1", generator=gen, table=tab, guidance_scale=1.0, guidance_from=g)
    partial = _guidance(tmp_path / "p.json", gen.checkpoint_sha256, {"head": 1.0, "medium": 1.0})
    with pytest.raises(MedltError, match=r"no scale for group\(s\) \['tail'\]"):
        run_synth(rec, tmp_path / "o2", generator=gen, table=tab, guidance_from=partial)
    other = _guidance(tmp_path / "x.json", "cd" * 32)
    with pytest.raises(MedltError, match="tuned for checkpoint"):
        run_synth(rec, tmp_path / "o3", generator=gen, table=tab, guidance_from=other, show_progress=False)
    assert not (tmp_path / "o3" / "manifest.csv").exists()
    with pytest.raises(MedltError, match="does not fit"):
        run_synth(rec, tmp_path / "o4", generator=gen, table=tab, sampler="rflow", dry_run=True)


def test_guidance_tuned_under_other_groups_is_refused(tmp_path):
    """The json records the thresholds and each class's group; a recipe that groups the classes
    otherwise is refused before any image, naming both thresholds (or the moved classes)."""
    rec, tab, gen = _setup(tmp_path)
    groups = dict(zip(NIH.names, ["head", "medium", "tail"] + ["tail"] * 17, strict=True))
    base = {"scales": SCALES, "generator": {"checkpoint_sha256": gen.checkpoint_sha256}, "class_groups": groups}
    other = tmp_path / "other_thr.json"
    other.write_text(json.dumps({**base, "group_thresholds": [2, 5]}))
    with pytest.raises(MedltError, match=r"tuned under data.group_thresholds \[2, 5\], this recipe has \[3, 6\]"):
        run_synth(rec, tmp_path / "o1", generator=gen, table=tab, quota="to_head", guidance_from=other,
                  show_progress=False)
    assert not (tmp_path / "o1" / "plan.json").exists() and gen.calls == []
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps({**base, "group_thresholds": [3, 6], "class_groups": {**groups, NIH.names[1]: "tail"}}))
    with pytest.raises(MedltError, match=rf"{NIH.names[1]} \(tail -> medium\)"):
        run_synth(rec, tmp_path / "o2", generator=gen, table=tab, quota="to_head", guidance_from=moved)
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({**base, "group_thresholds": [3, 6], "class_groups": {"A": "head", "B": "tail"}}))
    with pytest.raises(MedltError, match="tuned for classes"):
        run_synth(rec, tmp_path / "o3", generator=gen, table=tab, quota="to_head", guidance_from=classes)
    same = tmp_path / "same.json"  # the same thresholds and groups: accepted
    same.write_text(json.dumps({**base, "group_thresholds": [3, 6]}))
    run_synth(rec, tmp_path / "o4", generator=gen, table=tab, quota="to_head", batch_size=8, guidance_from=same,
              show_progress=False)
    assert (tmp_path / "o4" / "manifest.csv").is_file()


def test_multi_label_rows_take_the_rarest_group():
    groups = ["head", "medium", "tail", "head"]
    job = Job(ordinal=0, key="k", index=0, driver=0, label=(1, 0, 1, 0), seed=1, id="x")
    assert row_group(job, groups) == "tail"
    assert row_group(Job(0, "k", 0, 3, (1, 1, 0, 1), 1, "y"), groups) == "medium"
    assert row_group(Job(0, "k", 0, 3, (0, 0, 0, 0), 1, "z"), groups) == "head"  # no positive: its driver


def test_per_sample_scales_match_single_scale_batches(tmp_path):
    from medlt.diffusion.sample import load_generator

    rec = make_recipe(tmp_path, model={"channels": [8, 8], "attention_levels": [False, False],
                                       "num_res_blocks": 1, "num_head_channels": 8, "norm_num_groups": 4})
    rec.data.image_size = [8, 8]
    ckpt = write_tiny_checkpoint(tmp_path / "c.pt", rec, NIH, [1] * NIH.num_classes)
    gen = load_generator(ckpt)
    y = torch.tensor([0, 1, 2])
    both = gen.generate(y, [1, 2, 3], guidance_scale=[0.0, 1.0, 3.0], num_inference_steps=3)
    for i, w in enumerate((0.0, 1.0, 3.0)):
        alone = gen.generate(y[i:i + 1], [i + 1], guidance_scale=w, num_inference_steps=3)
        assert torch.allclose(both[i], alone[0], atol=1e-5)
    # the guided prediction itself: (1 + w_i)·ε(x, y_i) − w_i·ε(x, ∅) row by row
    from medlt.diffusion.sampling import guided_eps

    class Net(torch.nn.Module):  # ε(x, y) = x·(1 + y), ε(x, ∅) = x / 2
        def forward(self, x, t, labels, uncond):
            scale = torch.where(uncond, torch.full_like(labels, 0).float() + 0.5, 1.0 + labels.float())
            return x * scale[:, None, None, None]

    net = Net()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.full((3,), 500)
    w = torch.tensor([0.0, 1.0, 3.0])
    got = guided_eps(net, x, t, y, w)
    cond = net(x, t, y, torch.zeros(3, dtype=torch.bool))
    unc = net(x, t, y, torch.ones(3, dtype=torch.bool))
    assert torch.allclose(got, (1 + w[:, None, None, None]) * cond - w[:, None, None, None] * unc, atol=1e-4)
    assert not torch.allclose(got[2], cond[2], atol=1e-3)
    with pytest.raises(MedltError, match="guidance scales"):
        gen.generate(y, [1, 2, 3], guidance_scale=[1.0], num_inference_steps=2)


def test_cli_help_mentions_guidance_from(capsys):
    from medlt.cli import main

    with pytest.raises(SystemExit) as e:
        main(["synth", "--help"])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    assert "--guidance-from" in out and np.char.count(out, "rarest").item() >= 1
