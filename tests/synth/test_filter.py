import json

import numpy as np
import pandas as pd
import pytest
import torch

from medlt.data.labels import LabelSpace
from medlt.errors import MedltError
from medlt.synth.generate import run_synth
from tests.synth.fakes import FakeGenerator, make_recipe, make_table, one_hot_rows

NIH = LabelSpace.official("nih-cxr-lt")


class MeanClassifier:
    """p(intended class) high when the image's mean is above a threshold: rejects ~half the samples,
    deterministically per image (so per seed)."""

    def __init__(self, label_space, threshold=0.0, always_reject=()):
        self.label_space = label_space
        self.threshold = threshold
        self.always_reject = set(always_reject)
        self.seen = 0

    def predict_proba(self, images):
        b, k = images.shape[0], self.label_space.num_classes
        self.seen += b
        ok = images.flatten(1).mean(1) > self.threshold
        p = torch.full((b, k), 0.01)
        p[ok] = 0.99
        for c in self.always_reject:
            p[:, c] = 0.0
        return p


def _setup(tmp_path):
    rec = make_recipe(tmp_path / "real")
    tab = make_table(tmp_path / "real", NIH, one_hot_rows([5, 2, 1] + [3] * 17))
    return rec, tab, FakeGenerator(NIH)


def test_filter_replaces_rejected_until_quota_met(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    out = tmp_path / "out"
    clf = MeanClassifier(NIH)
    res = run_synth(rec, out, generator=gen, table=tab, quota="to_head", batch_size=4,
                    classifier=clf, classifier_sha256="c" * 64, min_confidence=0.5)
    plan = json.loads((out / "plan.json").read_text())
    rejected_total = sum(plan["rejections"].values())
    assert rejected_total > 0 and clf.seen == res.plan.num_images + rejected_total
    man = pd.read_csv(out / "manifest.csv", dtype=str)
    assert len(man) == res.plan.num_images  # quota met exactly
    counts = man[list(NIH.names)].astype(int).sum(axis=0).to_numpy() + np.array([5, 2, 1] + [3] * 17)
    assert (counts == 5).all()
    # every kept image passes the filter; files on disk = manifest rows
    for _, row in man.iterrows():
        lab = torch.tensor([int(np.argmax([int(row[n]) for n in NIH.names]))])
        x = gen.generate(lab, [int(row["seed"])], guidance_scale=0, num_inference_steps=1)
        assert x.mean() > 0
    assert len(list(out.rglob("*.png"))) == len(man)
    assert sum(c["rejected"] for c in plan["classes"]) == rejected_total
    assert plan["settings"]["filter"] == {"classifier_sha256": "c" * 64, "min_confidence": 0.5}
    # a re-run generates nothing
    gen.calls.clear()
    run_synth(rec, out, generator=gen, table=tab, quota="to_head", batch_size=4,
              classifier=clf, classifier_sha256="c" * 64, min_confidence=0.5)
    assert gen.calls == []


def test_filter_gives_up_after_bounded_rounds(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    rec.synth.filter_max_rounds = 3
    clf = MeanClassifier(NIH, always_reject=[2])
    with pytest.raises(MedltError, match=r"after 3 rounds.*Atelectasis"):
        run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_head", batch_size=4,
                  classifier=clf, min_confidence=0.5)
    plan = json.loads((tmp_path / "out/plan.json").read_text())
    assert plan["rejections"]["Atelectasis"] == 4 * 3


def test_filter_needs_both_options(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    with pytest.raises(MedltError, match="both"):
        run_synth(rec, tmp_path / "out", generator=gen, table=tab, classifier=MeanClassifier(NIH))
    with pytest.raises(MedltError, match=r"\[0, 1\]"):
        run_synth(rec, tmp_path / "out", generator=gen, table=tab, classifier=MeanClassifier(NIH),
                  min_confidence=1.5)


def test_filter_classifier_must_share_the_label_space(tmp_path):
    from medlt.errors import CheckpointError

    rec, tab, gen = _setup(tmp_path)
    with pytest.raises(CheckpointError, match="filter classifier"):
        run_synth(rec, tmp_path / "out", generator=gen, table=tab,
                  classifier=MeanClassifier(LabelSpace(("x", "y"), False)), min_confidence=0.5)
