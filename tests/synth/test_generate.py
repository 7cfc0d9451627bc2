import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medlt.data.labels import LabelSpace
from medlt.errors import CheckpointError, MedltError
from medlt.synth.generate import run_synth
from medlt.synth.jobs import noise_seed
from tests.synth.fakes import FakeGenerator, make_recipe, make_table, one_hot_rows

REPO = Path(__file__).resolve().parents[2]
NIH = LabelSpace.official("nih-cxr-lt")
COUNTS = [6, 3, 1, 0] + [2] * 16


def _setup(tmp_path, **gen_kw):
    rec = make_recipe(tmp_path / "real")
    tab = make_table(tmp_path / "real", NIH, one_hot_rows(COUNTS))
    return rec, tab, FakeGenerator(NIH, **gen_kw)


def _hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*.png"))}


def test_run_writes_balanced_set_manifest_and_merged(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    res = run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_head", batch_size=8)
    out = tmp_path / "out"
    n = sum(6 - c for c in COUNTS)
    assert res.written == n == len(_hashes(out))
    man = pd.read_csv(out / "manifest.csv", dtype=str)
    assert len(man) == n and set(man["source"]) == {"synthetic"} and set(man["split"]) == {"train"}
    assert set(man["guidance_scale"]) == {"0.8"} and set(man["sampler"]) == {"ddim"}
    assert set(man["checkpoint_sha256"]) == {gen.checkpoint_sha256}
    assert all((out / p).is_file() for p in man["image"])
    assert man["patient_id"].str.startswith("synthetic-").all()
    # the seed column is the pure function of (recipe seed, class, index)
    r = man.iloc[0]
    c = [n for n in NIH.names if r[n] == "1"][0]
    assert int(r["seed"]) == noise_seed(7, c, int(r["id"].rsplit("_", 1)[1]))
    # every generator call used the recipe's sampling settings and fixed batches of 8
    assert all(call["steps"] == 50 and call["sampler"] == "ddim" for call in gen.calls)
    assert [len(call["seeds"]) for call in gen.calls] == [8] * (n // 8) + ([n % 8] if n % 8 else [])

    # merged.csv through DATA's manifest reader: balanced train, val/test untouched and real
    from medlt.data.table import load_table
    from medlt.recipe import load_recipe

    merged = load_table(load_recipe(out / "merged.recipe.yaml"))
    assert merged.class_counts("train") == [6] * 20
    ev = merged.frame[merged.frame["split"] != "train"]
    assert len(ev) == 3 * 20 and set(ev["source"]) == {"real"}
    assert set(merged.frame[merged.frame["source"] == "synthetic"]["split"]) == {"train"}
    # real rows under the real data.root (merged.root.txt), synthetic rows under the synth folder
    root = Path((out / "merged.root.txt").read_text().strip())
    real, syn = (merged.frame[merged.frame["source"] == s] for s in ("real", "synthetic"))
    assert all(Path(p).resolve().is_relative_to(root) for p in real["image"])
    assert all(Path(p).resolve().is_relative_to(out.resolve()) for p in syn["image"])
    plan = json.loads((out / "plan.json").read_text())
    assert plan["num_images"] == n and [c["after"] for c in plan["classes"]] == [6] * 20


def test_rerun_skips_finished_batches_and_refills_partial_ones(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    out = tmp_path / "out"
    run_synth(rec, out, generator=gen, table=tab, quota="to_count:4", batch_size=5)
    before = _hashes(out)
    mtimes = {p: (out / p).stat().st_mtime_ns for p in before}
    gen.calls.clear()
    res = run_synth(rec, out, generator=gen, table=tab, quota="to_count:4", batch_size=5)
    assert gen.calls == [] and res.written == 0 and res.skipped_batches > 0
    victim = sorted(before)[3]
    (out / victim).unlink()
    res = run_synth(rec, out, generator=gen, table=tab, quota="to_count:4", batch_size=5)
    assert len(gen.calls) == 1 and len(gen.calls[0]["seeds"]) == 5  # the whole batch, once
    assert res.written == 1  # only the missing file is written
    assert _hashes(out) == before
    assert all((out / p).stat().st_mtime_ns == mtimes[p] for p in before if p != victim)


def test_two_shards_equal_one_run(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    run_synth(rec, tmp_path / "one", generator=gen, table=tab, quota="to_head", batch_size=4)
    # rank 1 first so that rank 0 (which writes the manifests) finds every file at the end
    r1 = run_synth(rec, tmp_path / "two", generator=gen, table=tab, quota="to_head", batch_size=4,
                   rank=1, world_size=2)
    r0 = run_synth(rec, tmp_path / "two", generator=gen, table=tab, quota="to_head", batch_size=4,
                   rank=0, world_size=2)
    assert r0.written > 0 and r1.written > 0
    assert _hashes(tmp_path / "one") == _hashes(tmp_path / "two")
    assert (tmp_path / "one/manifest.csv").read_bytes() == (tmp_path / "two/manifest.csv").read_bytes()


def test_resume_with_other_settings_is_refused(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    out = tmp_path / "out"
    run_synth(rec, out, generator=gen, table=tab, quota="to_count:3", batch_size=5)
    with pytest.raises(MedltError, match="guidance_scale"):
        run_synth(rec, out, generator=gen, table=tab, quota="to_count:3", batch_size=5, guidance_scale=2.0)
    with pytest.raises(MedltError, match="different plan"):
        run_synth(rec, out, generator=gen, table=tab, quota="to_count:4", batch_size=5)
    with pytest.raises(MedltError, match="batch_size"):
        run_synth(rec, out, generator=gen, table=tab, quota="to_count:3", batch_size=6)


def test_resume_with_other_sampling_options_is_refused_and_an_older_folder_resumes(tmp_path):
    from medlt.diffusion.sampling import SamplerOptions

    rec, tab, gen = _setup(tmp_path)
    gen.sampling_settings = SamplerOptions().to_dict()
    out = tmp_path / "out"
    run_synth(rec, out, generator=gen, table=tab, quota="to_count:3", batch_size=5)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["settings"]["sampling_options"]["x0_clip"] == "legacy"
    # a folder written before the options were recorded sampled with their defaults: it resumes
    del plan["settings"]["sampling_options"]
    (out / "plan.json").write_text(json.dumps(plan))
    run_synth(rec, out, generator=gen, table=tab, quota="to_count:3", batch_size=5)
    gen.sampling_settings = SamplerOptions(x0_clip="consistent").to_dict()
    with pytest.raises(MedltError, match="sampling_options"):
        run_synth(rec, out, generator=gen, table=tab, quota="to_count:3", batch_size=5)


def test_dry_run_writes_plan_only(tmp_path):
    rec, tab, _ = _setup(tmp_path)
    res = run_synth(rec, tmp_path / "out", table=tab, quota="to_ratio:0.5", dry_run=True)
    plan = json.loads((tmp_path / "out/plan.json").read_text())
    assert plan["settings"]["checkpoint_sha256"] is None
    assert [c["target"] for c in plan["classes"]] == [max(c, 3) for c in COUNTS]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["plan.json"]
    assert res.plan.num_images == sum(max(0, 3 - c) for c in COUNTS)


def test_label_space_mismatch_is_a_checkpoint_error(tmp_path):
    rec, tab, _ = _setup(tmp_path)
    other = FakeGenerator(LabelSpace(("a", "b"), multi_label=False))
    with pytest.raises(CheckpointError, match="classes"):
        run_synth(rec, tmp_path / "out", generator=other, table=tab)


def test_bad_sampler_and_steps(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    with pytest.raises(MedltError, match="sampler"):
        run_synth(rec, tmp_path / "out", generator=gen, table=tab, sampler="euler")
    with pytest.raises(MedltError, match="steps"):
        run_synth(rec, tmp_path / "out", generator=gen, table=tab, steps=0)


_CHILD = r"""
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from medlt.data.labels import LabelSpace
from medlt.synth.generate import run_synth
from tests.synth.fakes import FakeGenerator, make_recipe, make_table, one_hot_rows
tmp = Path({tmp!r})
ls = LabelSpace.official("nih-cxr-lt")
rec = make_recipe(tmp / "real")
tab = make_table(tmp / "real", ls, one_hot_rows({counts!r}), write_images=False)
gen = FakeGenerator(ls, image_shape=(1, 64, 64), delay_s={delay!r})
run_synth(rec, Path(sys.argv[1]), generator=gen, table=tab, quota="to_head", batch_size=3, show_progress=False)
"""


def test_sigkill_half_way_then_resume_gives_identical_bytes(tmp_path):
    from medlt.data.io import read_cxr

    make_table(tmp_path / "real", NIH, one_hot_rows(COUNTS))  # real images for merged.csv
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(repo=str(REPO), tmp=str(tmp_path), counts=COUNTS, delay=0.1))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    tab = make_table(tmp_path / "real", NIH, one_hot_rows(COUNTS), write_images=False)
    run_synth(make_recipe(tmp_path / "real"), ref, generator=FakeGenerator(NIH, image_shape=(1, 64, 64)),
              table=tab, quota="to_head", batch_size=3, show_progress=False)  # uninterrupted, in-process
    n_total = len(_hashes(ref))
    assert n_total == sum(6 - c for c in COUNTS)

    proc = subprocess.Popen([sys.executable, str(script), str(cut)], env=env)
    deadline = time.time() + 180
    while time.time() < deadline and len(list(cut.rglob("*.png"))) < n_total // 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = _hashes(cut)
    assert 0 < len(partial) < n_total, "the kill should land half-way"
    assert not (cut / "manifest.csv").exists()
    for p in partial:  # every file that exists is complete and readable
        assert read_cxr(cut / p).shape == (64, 64)
    assert partial == {k: v for k, v in _hashes(ref).items() if k in partial}

    subprocess.run([sys.executable, str(script), str(cut)], check=True, env=env, timeout=120)
    assert _hashes(cut) == _hashes(ref)
    assert not list(cut.rglob(".*.tmp"))
    assert (cut / "manifest.csv").read_bytes() == (ref / "manifest.csv").read_bytes()
    assert np.array_equal(read_cxr(cut / sorted(partial)[0]), read_cxr(ref / sorted(partial)[0]))


def test_dry_run_does_not_overwrite_a_real_runs_plan(tmp_path):
    rec, tab, gen = _setup(tmp_path)
    out = tmp_path / "out"
    run_synth(rec, out, generator=gen, table=tab, quota="to_count:3", batch_size=5)
    before = (out / "plan.json").read_bytes()
    res = run_synth(rec, out, table=tab, quota="to_head", dry_run=True)
    assert (out / "plan.json").read_bytes() == before and "plan" not in res.outputs
