"""Best of K candidates in `medlt synth` (synth.candidates_per_image, synth.selector,
synth.selection_rule; medlt.synth.select): K = 1 is today's output byte for byte, the kept candidate
is the selector's best (or the best that is not a near-copy), the run is deterministic, resumes to the
same bytes and shards like one process, and the manifest says which candidate was kept."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medlt.data.labels import LabelSpace
from medlt.errors import CheckpointError, MedltError
from medlt.synth.generate import run_synth
from medlt.synth.writers import resolve_layout
from medlt.utils.seeding import derive_seed
from tests.cli_run import run_cli
from tests.synth.fakes import (
    FakeGenerator,
    dies_on_call,
    make_recipe,
    make_table,
    one_hot_rows,
    write_manifest_dataset,
    write_tiny_checkpoint,
)

REPO = Path(__file__).resolve().parents[2]
NIH = LabelSpace.official("nih-cxr-lt")
COUNTS = [6, 3, 1, 0] + [2] * 16


class MeanSelector:
    """A stand-in selector: logits 20 * mean(image) * (+1 for even classes, -1 for odd ones), so the
    preferred candidate of an even class is the brightest and of an odd class the darkest."""

    def __init__(self, label_space=NIH):
        self.label_space = label_space
        self.checkpoint_sha256 = "5e" * 32
        self.calls = 0

    def logits(self, images):
        m = torch.as_tensor(images).flatten(1).mean(1)
        sign = torch.tensor([(-1.0) ** c for c in range(self.label_space.num_classes)])
        return 20 * m[:, None] * sign[None, :]

    def predict_proba(self, images):
        self.calls += 1
        z = self.logits(images)
        return torch.sigmoid(z) if self.label_space.multi_label else torch.softmax(z, dim=1)


def candidate_seed(job_seed: int, k: int) -> int:
    """The documented seed of candidate k (docs/methods.md): the planned seed for k = 0."""
    return job_seed if k == 0 else derive_seed(job_seed, "candidate", k)


def _setup(tmp_path):
    rec = make_recipe(tmp_path / "real")
    tab = make_table(tmp_path / "real", NIH, one_hot_rows(COUNTS))
    return rec, tab


def _files(out: Path) -> dict[str, bytes]:
    """Every file of a synth folder but merged.recipe.yaml (it names the folder itself)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "merged.recipe.yaml"}


# --- the maths: score and selection order ---------------------------------------------------------------

def test_selection_order_on_a_hand_made_score_table():
    from medlt.synth.select import choose_candidates

    scores = np.array([[0.2, 0.9, 0.5],
                       [0.7, 0.7, 0.1],   # a tie goes to the lower candidate index
                       [0.1, 0.2, 0.3],
                       [0.4, 0.8, 0.6]])
    picked, rank = choose_candidates(scores, "best")
    assert picked.tolist() == [1, 0, 2, 1] and rank.tolist() == [0, 0, 0, 0]
    near = np.array([[False, True, False],
                     [True, True, True],    # every candidate a near-copy: nothing kept
                     [False, False, False],
                     [False, True, True]])
    picked, rank = choose_candidates(scores, "best-not-near-copy", near)
    assert picked.tolist() == [2, -1, 2, 0] and rank.tolist() == [1, -1, 0, 2]
    with pytest.raises(ValueError, match="near-copy flags"):
        choose_candidates(scores, "best-not-near-copy")


def test_scores_single_label_intended_probability_multi_label_whole_vector():
    from medlt.synth.select import selection_scores

    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    y = np.array([[0, 1, 0], [0, 0, 1]])
    assert selection_scores(p, y, multi_label=False).tolist() == pytest.approx([0.7, 0.2])
    # multi-label: geometric mean over classes of p(intended value) under independent sigmoids
    p = np.array([[0.9, 0.8, 0.1], [0.9, 0.8, 0.9], [0.9, 0.2, 0.1]])
    y = np.array([[1, 1, 0]] * 3)
    s = selection_scores(p, y, multi_label=True)
    assert s[0] == pytest.approx((0.9 * 0.8 * 0.9) ** (1 / 3))
    assert s[0] > s[1] and s[0] > s[2]  # an extra finding and a missing one both lower the score
    assert 0.0 < selection_scores(np.array([[0.0, 1.0]]), np.array([[1, 0]]), True)[0] < 1e-6  # no log(0)


def test_candidate_zero_is_the_planned_seed_and_the_others_are_pure_functions():
    from medlt.synth import select

    assert select.candidate_seed(1234, 0) == 1234
    seeds = [select.candidate_seed(1234, k) for k in range(1, 5)]
    assert seeds == [candidate_seed(1234, k) for k in range(1, 5)]  # the documented function
    assert len(set(seeds)) == 4 and 1234 not in seeds and select.candidate_seed(1235, 1) != seeds[0]


# --- run_synth with a stand-in selector -----------------------------------------------------------------

def test_k1_is_byte_identical_to_no_option(tmp_path):
    rec, tab = _setup(tmp_path)
    kw = dict(table=tab, quota="to_count:4", batch_size=5, show_progress=False)
    run_synth(rec, tmp_path / "plain", generator=FakeGenerator(NIH), **kw)
    rec.synth.candidates_per_image = 1
    run_synth(rec, tmp_path / "k1", generator=FakeGenerator(NIH), **kw)
    res = run_synth(rec, tmp_path / "k1sel", generator=FakeGenerator(NIH), candidates_per_image=1,
                    selector=MeanSelector(), **kw)
    plain = _files(tmp_path / "plain")
    assert plain == _files(tmp_path / "k1") == _files(tmp_path / "k1sel")
    assert any("not used" in w for w in res.warnings)  # a selector with K = 1 is said to be unused


def test_kept_candidate_is_the_argmax_and_the_manifest_says_which(tmp_path):
    rec, tab = _setup(tmp_path)
    gen, sel = FakeGenerator(NIH), MeanSelector()
    out = tmp_path / "out"
    res = run_synth(rec, out, generator=gen, table=tab, quota="to_count:4", batch_size=5, show_progress=False,
                    candidates_per_image=3, selector=sel)
    n = res.plan.num_images
    assert res.candidates == 3 * n and len(gen.calls) == 3 * -(-n // 5)  # K generator calls per batch
    assert sel.calls == len(gen.calls)  # the selector scores each candidate batch once
    man = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    plain_cols = ["id", "image", "patient_id", "split", *NIH.names, "source", "seed", "checkpoint_sha256",
                  "guidance_scale", "sampler", "steps"]
    assert list(man.columns) == plain_cols + ["candidates", "candidate", "candidate_seed", "candidate_rank",
                                              "selection_score"]
    assert len(man) == n and set(man["candidates"]) == {"3"} and set(man["candidate_rank"]) == {"0"}
    layout = resolve_layout("nih-cxr-lt", None, checkpoint_sha256=gen.checkpoint_sha256)
    jobs = {j.id: j for j in res.final_jobs}
    for _, r in man.iterrows():
        j = jobs[r["id"]]
        seeds = [candidate_seed(j.seed, k) for k in range(3)]
        x = gen.generate(torch.tensor([j.driver] * 3), seeds, guidance_scale=0.8, num_inference_steps=50)
        p = sel.predict_proba(x)[:, j.driver].numpy()  # the intended class's probability, per candidate
        best = int(np.argmax(p))
        assert int(r["candidate"]) == best and int(r["candidate_seed"]) == seeds[best]
        assert float(r["selection_score"]) == pytest.approx(float(p[best]), rel=1e-5)
        layout.write(tmp_path / "expected.png", x[best].numpy(), j)  # the file is the kept candidate's image
        assert (out / r["image"]).read_bytes() == (tmp_path / "expected.png").read_bytes()
    assert len(set(man["candidate"])) == 3  # the test bites: every candidate index is kept somewhere
    s = json.loads((out / "plan.json").read_text())["settings"]["selection"]
    assert s == {"candidates_per_image": 3, "rule": "best", "selector_sha256": sel.checkpoint_sha256}


def test_multi_label_selection_scores_the_whole_label_vector(tmp_path):
    ct = LabelSpace(("a", "b", "c"), True)
    rec = make_recipe(tmp_path / "real", fmt="ct-rate")
    tab = make_table(tmp_path / "real", ct, np.array([[1, 0, 0]] * 5 + [[1, 1, 0]] * 2 + [[0, 0, 1]]), fmt="ct-rate")
    gen, sel = FakeGenerator(ct, image_shape=(1, 8, 8, 4)), MeanSelector(ct)
    res = run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_head", batch_size=4,
                    show_progress=False, candidates_per_image=2, selector=sel)
    man = pd.read_csv(tmp_path / "out/manifest.csv", dtype=str, keep_default_na=False)
    jobs = {j.id: j for j in res.final_jobs}
    for _, r in man.iterrows():
        j = jobs[r["id"]]
        seeds = [candidate_seed(j.seed, k) for k in range(2)]
        x = gen.generate(torch.tensor([j.label] * 2, dtype=torch.float32), seeds, guidance_scale=0.8,
                         num_inference_steps=50)
        p = torch.sigmoid(sel.logits(x)).double().numpy()
        y = np.array(j.label, dtype=bool)
        score = np.exp(np.log(np.where(y, p, 1 - p)).mean(axis=1))
        assert int(r["candidate"]) == int(np.argmax(score))
        assert float(r["selection_score"]) == pytest.approx(score.max(), rel=1e-5)
    assert "candidate_rank" in pd.read_csv(tmp_path / "out/merged.csv").columns


def test_two_runs_identical_and_resume_after_deleting_outputs(tmp_path):
    rec, tab = _setup(tmp_path)
    kw = dict(table=tab, quota="to_count:4", batch_size=5, show_progress=False, candidates_per_image=3)
    run_synth(rec, tmp_path / "a", generator=FakeGenerator(NIH), selector=MeanSelector(), **kw)
    run_synth(rec, tmp_path / "b", generator=FakeGenerator(NIH), selector=MeanSelector(), **kw)
    a = _files(tmp_path / "a")
    assert a == _files(tmp_path / "b") and any(f.startswith(".synth/filter/") for f in a)
    # delete two images of different batches, one batch record and the manifests: a re-run restores them
    b = tmp_path / "b"
    pngs = sorted(b.rglob("*.png"))
    for p in (pngs[0], pngs[-1], b / "manifest.csv", b / "merged.csv", next(iter(sorted((b / ".synth/filter")
                                                                                         .glob("*.json"))))):
        p.unlink()
    gen = FakeGenerator(NIH)
    res = run_synth(rec, b, generator=gen, selector=MeanSelector(), **kw)
    assert _files(b) == a
    assert 0 < res.generated_batches <= 3 and len(gen.calls) == 3 * res.generated_batches  # only those batches
    # an interrupted run resumes to the same bytes
    Dies = dies_on_call(FakeGenerator, 8)
    with pytest.raises(KeyboardInterrupt):
        run_synth(rec, tmp_path / "c", generator=Dies(NIH), selector=MeanSelector(), **kw)
    run_synth(rec, tmp_path / "c", generator=FakeGenerator(NIH), selector=MeanSelector(), **kw)
    assert _files(tmp_path / "c") == a
    # resuming with another K (or without selection) is refused
    with pytest.raises(MedltError, match="selection"):
        run_synth(rec, b, generator=FakeGenerator(NIH), selector=MeanSelector(), **{**kw, "candidates_per_image": 2})
    with pytest.raises(MedltError, match="selection"):
        run_synth(rec, b, generator=FakeGenerator(NIH), **{**kw, "candidates_per_image": 1})


def test_two_shards_equal_one_run(tmp_path):
    rec, tab = _setup(tmp_path)
    kw = dict(table=tab, quota="to_head", batch_size=4, show_progress=False, candidates_per_image=2)
    run_synth(rec, tmp_path / "one", generator=FakeGenerator(NIH), selector=MeanSelector(), **kw)
    r1 = run_synth(rec, tmp_path / "two", generator=FakeGenerator(NIH), selector=MeanSelector(), rank=1,
                   world_size=2, **kw)
    r0 = run_synth(rec, tmp_path / "two", generator=FakeGenerator(NIH), selector=MeanSelector(), rank=0,
                   world_size=2, **kw)
    assert r0.written > 0 and r1.written > 0
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


# --- errors ---------------------------------------------------------------------------------------------

def test_k_above_one_without_selector_is_one_line_naming_the_key(tmp_path, capsys):
    recipe = write_manifest_dataset(tmp_path / "real", ("a", "b", "c"), [5, 2, 1])
    base = ["synth", recipe, "--checkpoint", tmp_path / "missing.pt", "--out", tmp_path / "o"]
    code, _, err = run_cli([*base, "--set", "synth.candidates_per_image=4"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "synth.candidates_per_image" in lines[0] and "selector" in lines[0]
    code, _, err = run_cli([*base, "--candidates-per-image", "3", "--dry-run"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--candidates-per-image 3 needs a selector" in lines[0]
    code, _, err = run_cli([*base, "--candidates-per-image", "3", "--selector", recipe, "--selection-rule",
                            "best-not-near-copy"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--drop-near-copies" in lines[0] and "--selection-rule" in lines[0]
    code, _, err = run_cli([*base, "--candidates-per-image", "0"], capsys)
    assert code == 2 and "--candidates-per-image must be >= 1" in err
    assert not (tmp_path / "o").exists()


def test_a_selector_of_other_classes_is_refused(tmp_path):
    rec, tab = _setup(tmp_path)
    with pytest.raises(CheckpointError, match="classes"):
        run_synth(rec, tmp_path / "out", generator=FakeGenerator(NIH), table=tab, candidates_per_image=2,
                  selector=str(_fake_classifier_checkpoint(tmp_path, LabelSpace(("x", "y"), False))))


def _fake_classifier_checkpoint(tmp_path, label_space, meta=None):
    """A `medlt classify`-layout checkpoint of an untrained tiny ResNet (for the selector's checks)."""
    from medlt.classify.models import build_classifier_net
    from medlt.recipe import recipe_to_dict
    from medlt.utils.checkpoint import save_checkpoint

    rec = make_recipe(tmp_path / "real", classifier={"architecture": "resnet18", "widen_factor": 0.25})
    rec.data.image_size = [8, 8]
    net = build_classifier_net(rec.classifier, 2, label_space.num_classes)
    return save_checkpoint(tmp_path / "clf.pt", {"model": net.state_dict(), "recipe": recipe_to_dict(rec),
                                                 "label_space": label_space.to_dict(), "spatial_dims": 2,
                                                 "meta": meta or {}})


def test_a_selector_trained_on_synthetic_images_is_refused(tmp_path):
    rec, tab = _setup(tmp_path)
    path = _fake_classifier_checkpoint(tmp_path, NIH, meta={"train_manifest": "/x/merged.csv"})
    with pytest.raises(CheckpointError, match="real training split only"):
        run_synth(rec, tmp_path / "out", generator=FakeGenerator(NIH), table=tab, candidates_per_image=2,
                  selector=str(path))


# --- the diversity rule: best-not-near-copy -------------------------------------------------------------

def test_best_not_near_copy_skips_candidates_flagged_as_near_copies(tmp_path):
    from medlt.data.loaders import build_dataset
    from medlt.recipe.load import recipe_from_dict
    from tests.synth.test_near_copies import NIH as NIH_NC
    from tests.synth.test_near_copies import CopyingGenerator, _extractor, _write_nih

    _write_nih(tmp_path / "real", [5, 2, 1] + [3] * 17, np.random.default_rng(0))
    rec = recipe_from_dict({"name": "nc", "seed": 7, "data": {
        "format": "nih-cxr-lt", "root": str(tmp_path / "real"), "labels": str(tmp_path / "real"),
        "image_size": [8, 8], "group_thresholds": [3, 6]}}, base_dir=tmp_path)
    real = build_dataset(rec, "train")
    imgs = torch.stack([torch.as_tensor(real[i]["image"]) for i in range(len(real))]).float()
    labels = torch.tensor([int(real[i]["label"]) for i in range(len(real))])
    ext = _extractor(tmp_path / "pool.pt")

    class ClosenessSelector(MeanSelector):
        def predict_proba(self, images):
            self.calls += 1
            x = torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(images), 8).flatten(1)
            d = torch.cdist(x, torch.nn.functional.adaptive_avg_pool2d(imgs, 8).flatten(1)).min(1).values
            p = torch.full((x.shape[0], 20), 0.0)
            return p + (1.0 / (1.0 + d))[:, None]  # every class: higher when closer to a real image

    kw = dict(quota="to_head", batch_size=4, show_progress=False, candidates_per_image=3, table=None)
    gen = CopyingGenerator(NIH_NC, imgs, labels)
    run_synth(rec, tmp_path / "best", generator=gen, selector=ClosenessSelector(NIH_NC), **kw)
    best = pd.read_csv(tmp_path / "best/manifest.csv", dtype=str, keep_default_na=False)
    assert (best["candidate_seed"].astype(int) % 3 == 0).sum() > 5  # rule best keeps the copies it is offered
    # best, then --drop-near-copies: the kept copies are dropped and their planned images re-drawn (K new
    # candidates, where the selector again prefers a copy: it takes many rounds, hence the diversity rule)
    gen = CopyingGenerator(NIH_NC, imgs, labels)
    rec.synth.filter_max_rounds = 40
    run_synth(rec, tmp_path / "best_nc", generator=gen, selector=ClosenessSelector(NIH_NC), near_copies=ext, **kw)
    rec.synth.filter_max_rounds = 10
    man = pd.read_csv(tmp_path / "best_nc/manifest.csv", dtype=str, keep_default_na=False)
    dropped = pd.read_csv(tmp_path / "best_nc/dropped.csv", dtype=str, keep_default_na=False)
    assert (man["candidate_seed"].astype(int) % 3 != 0).all() and len(dropped) > 5
    assert set(man.loc[man["redraw_attempt"] != "0", "replaces"]) <= set(dropped["id"])

    gen = CopyingGenerator(NIH_NC, imgs, labels)
    res = run_synth(rec, tmp_path / "div", generator=gen, selector=ClosenessSelector(NIH_NC), near_copies=ext,
                    selection_rule="best-not-near-copy", **kw)
    man = pd.read_csv(tmp_path / "div/manifest.csv", dtype=str, keep_default_na=False)
    assert len(man) == res.plan.num_images
    assert (man["candidate_seed"].astype(int) % 3 != 0).all()  # no copy kept
    skipped = man[man["candidate_rank"] != "0"]
    assert len(skipped) > 5  # the selector's favourite was a copy and was passed over
    jobs = {j.id: j for j in res.final_jobs}
    for _, r in skipped.iterrows():  # every candidate ranked above the kept one was a copy
        j = jobs[r["id"]]
        x = gen.generate(torch.tensor([j.driver] * 3), [candidate_seed(j.seed, k) for k in range(3)],
                         guidance_scale=0.8, num_inference_steps=50)
        p = ClosenessSelector(NIH_NC).predict_proba(torch.as_tensor(x))[:, 0].numpy()
        above = [k for k in range(3) if p[k] > p[int(r["candidate"])]]
        assert len(above) == int(r["candidate_rank"])
        assert all(candidate_seed(j.seed, k) % 3 == 0 for k in above)
    plan = json.loads((tmp_path / "div/plan.json").read_text())
    assert plan["settings"]["selection"]["rule"] == "best-not-near-copy"
    dropped = pd.read_csv(tmp_path / "div/dropped.csv", dtype=str, keep_default_na=False)
    assert set(dropped["reason"]) <= {"near-copy"}  # planned images whose K candidates were all copies


# --- the command line, with a selector trained by `medlt classify` on the real training split ----------

def test_cli_dry_run_prints_the_cost_and_records_the_selector(tmp_path, capsys):
    from medlt.utils.checkpoint import file_sha256

    recipe = write_manifest_dataset(tmp_path / "real", ("a", "b", "c"), [5, 2, 1])
    clf = _fake_classifier_checkpoint(tmp_path, LabelSpace(("a", "b", "c"), False))
    code, out, err = run_cli(["synth", recipe, "--out", tmp_path / "o", "--dry-run", "--candidates-per-image", "4",
                              "--selector", clf], capsys)
    text = " ".join(out.split())
    assert code == 0, err
    assert "4 candidates generated per kept image" in text and "about 4x the wall time" in text
    assert "biased upwards" in text  # the selector is no judge
    s = json.loads((tmp_path / "o/plan.json").read_text())["settings"]["selection"]
    assert s == {"candidates_per_image": 4, "rule": "best", "selector_sha256": file_sha256(clf)}
    code, out, _ = run_cli(["synth", recipe, "--out", tmp_path / "o1", "--dry-run"], capsys)
    assert code == 0 and "candidates per kept image: 1" in " ".join(out.split())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny real data set, a random tiny diffusion checkpoint and a selector trained for one epoch by
    `medlt classify` on the real training split."""
    from medlt.recipe import load_recipe

    b = tmp_path_factory.mktemp("bestofk")
    names, counts = ("a", "b", "c"), [7, 2, 1]
    recipe = write_manifest_dataset(b / "real", names, counts)
    ckpt = write_tiny_checkpoint(b / "ck.pt", load_recipe(recipe), LabelSpace(names, False), counts)
    from medlt.cli import main

    try:
        main(list(map(str, ["classify", recipe, "--out", b / "clf", "--set", "classifier.architecture=resnet18",
                            "--set", "classifier.widen_factor=0.25", "--set", "classifier.epochs=1",
                            "--set", "classifier.device=cpu", "--set", "evaluate.bootstrap_resamples=0"])))
    except SystemExit as e:
        assert not e.code, f"medlt classify exited {e.code}"
    return {"recipe": recipe, "ckpt": ckpt, "clf": b / "clf"}


def _synth_args(trained, k=2):
    return ["-m", "medlt", "synth", str(trained["recipe"]), "--checkpoint", str(trained["ckpt"]), "--steps", "3",
            "--batch-size", "3", "--device", "cpu", "--candidates-per-image", str(k), "--selector",
            str(trained["clf"])]


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process_with_a_trained_selector(trained, tmp_path):
    from medlt.utils.checkpoint import file_sha256

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    torchrun = Path(sys.executable).with_name("torchrun")
    args = _synth_args(trained)
    r = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env, timeout=300,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "best of 2 (best): 22 candidate(s) generated" in " ".join(r.stdout.split())
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", *args, "--out", str(tmp_path / "two")],
                       env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sum(f.endswith(".png") for f in one) == 5 + 6 and one == two
    man = pd.read_csv(tmp_path / "one/manifest.csv", dtype=str, keep_default_na=False)
    assert set(man["candidates"]) == {"2"} and set(man["candidate"]) <= {"0", "1"}
    sha = json.loads((tmp_path / "one/plan.json").read_text())["settings"]["selection"]["selector_sha256"]
    assert sha == file_sha256(trained["clf"] / "checkpoints" / "best.pt")
