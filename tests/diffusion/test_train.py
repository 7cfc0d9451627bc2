"""Trainer: checkpoints, generator interface, resume after SIGKILL, NaN stop, DDP with 2 processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from medlt.diffusion.metrics_log import read_metrics
from medlt.diffusion.sample import load_generator
from medlt.diffusion.train import train
from medlt.errors import CheckpointError, MedltError, TrainingDiverged
from medlt.utils.checkpoint import load_checkpoint
from tests.diffusion.toy import toy_data, toy_recipe

REPO = Path(__file__).resolve().parents[2]
ALL = "regularizers=[{name: cbdm}, {name: overlap}, {name: ccua}]"


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("TOY_STEP_SLEEP_S", None)
    return env


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    recipe = toy_recipe(out.parent, [ALL, "training.max_steps=4", "training.sample_grid_every_steps=4"])
    ckpt = train(recipe, out, data=toy_data())
    return out, ckpt


def test_run_folder_and_checkpoint_contents(trained):
    out, ckpt = trained
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert set(state) >= {"model", "ema", "optimizer", "lr_scheduler", "step", "rng", "recipe",
                          "label_space", "train_class_counts"}
    assert state["step"] == 4 and state["train_class_counts"] == [12, 8, 4]
    assert yaml.safe_load((out / "recipe.resolved.yaml").read_text())["regularizers"][2]["name"] == "ccua"
    rows = read_metrics(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert {"mse", "cbdm", "overlap", "ccua_ucl", "ccua_al", "loss", "images_per_s"} <= set(rows[0])
    from PIL import Image

    grid = Image.open(out / "samples" / "step_0000004.png")
    assert grid.text.get("medlt:synthetic") == "true" and grid.size[1] >= 3 * 8  # rows = 3 classes
    # EMA differs from the raw weights
    assert any(not torch.equal(state["ema"][k], state["model"][k]) for k in state["model"])


def test_generator_interface(trained):
    _, ckpt = trained
    gen = load_generator(ckpt)
    assert gen.image_shape == (1, 8, 8) and gen.train_class_counts == [12, 8, 4]
    assert gen.label_space.names == ("alpha", "beta", "gamma") and len(gen.checkpoint_sha256) == 64
    assert gen.recipe.name == "toy"
    for sampler in ("ddim", "ddpm"):
        a = gen.generate(torch.tensor([0, 2]), [5, 6], guidance_scale=0.8, num_inference_steps=4, sampler=sampler)
        b = gen.generate(torch.tensor([2]), [6], guidance_scale=0.8, num_inference_steps=4, sampler=sampler)
        assert a.shape == (2, 1, 8, 8) and a.abs().max() <= 1
        assert torch.allclose(a[1], b[0], atol=1e-5)  # an image depends on its own seed, not its batch
        c = gen.generate(torch.tensor([2]), [7], guidance_scale=0.8, num_inference_steps=4, sampler=sampler)
        assert not torch.allclose(b, c)
    with pytest.raises(MedltError, match="out of range"):
        gen.generate(torch.tensor([3]), [1], guidance_scale=0.0, num_inference_steps=2)
    assert load_generator(ckpt.parent.parent).checkpoint_sha256 == gen.checkpoint_sha256  # RUN folder ok


def test_existing_run_needs_resume_and_missing_checkpoint(trained, tmp_path):
    out, _ = trained
    with pytest.raises(MedltError, match="--resume"):
        train(toy_recipe(out.parent, [ALL]), out, data=toy_data())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(toy_recipe(tmp_path), tmp_path / "none", resume=True, data=toy_data())
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing.pt")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"

    def inject(step, st):
        if step == 3:
            st.terms["mse"] = st.terms["mse"] * float("nan")

    recipe = toy_recipe(tmp_path, ["training.max_steps=8"])
    with pytest.raises(TrainingDiverged) as e:
        train(recipe, out, data=toy_data(), step_hook=inject)
    msg = str(e.value)
    assert "step 4" in msg and "step 2" in msg and "left intact" in msg and "\n" not in msg
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert [int(r["step"]) for r in read_metrics(out / "metrics.csv")] == [1, 2, 3]


def test_multilabel_3d_train_and_generate(tmp_path):
    recipe = toy_recipe(tmp_path, ["training.max_steps=2", ALL], multi_label=True, depth=4)
    ckpt = train(recipe, tmp_path / "run", data=toy_data(multi_label=True, depth=4))
    gen = load_generator(ckpt)
    assert gen.image_shape == (1, 8, 8, 4) and gen.label_space.multi_label
    x = gen.generate(torch.tensor([[1.0, 0, 1], [0, 0, 0]]), [1, 2], guidance_scale=1.0, num_inference_steps=2)
    assert x.shape == (2, 1, 8, 8, 4)
    with pytest.raises(MedltError, match=r"\(B, 3\)"):
        gen.generate(torch.tensor([0, 1]), [1, 2], guidance_scale=1.0, num_inference_steps=2)


def _toy(out, *args, sleep=None):
    env = _env()
    if sleep:
        env["TOY_STEP_SLEEP_S"] = str(sleep)
    return [sys.executable, "-m", "tests.diffusion.toy", str(out), *args], env


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    sets = [ALL, "training.max_steps=8", "training.checkpoint_every_steps=3"]
    killed = tmp_path / "killed"
    cmd, env = _toy(killed, *sets, sleep=0.3)
    proc = subprocess.Popen(cmd, env=env, cwd=REPO)
    ckpt = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 180
    while time.time() < deadline and not ckpt.exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.45)  # a step or so past the checkpoint: rows after it must be dropped on resume
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = load_checkpoint(ckpt)["step"]
    assert 3 <= step_at_kill < 8
    rows_at_kill = read_metrics(killed / "metrics.csv")
    assert len(rows_at_kill) >= step_at_kill

    # resume and the uninterrupted reference run in this process, single-threaded like the child
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(toy_recipe(tmp_path, sets), killed, resume=True, data=toy_data())
        train(toy_recipe(tmp_path, sets), tmp_path / "full", data=toy_data())
    finally:
        torch.set_num_threads(threads)
    full, resumed = read_metrics(tmp_path / "full" / "metrics.csv"), read_metrics(killed / "metrics.csv")
    assert [r["step"] for r in resumed] == [str(s) for s in range(1, 9)]
    for a, b in zip(full, resumed, strict=True):
        for k in ("loss", "mse", "cbdm", "overlap", "ccua_ucl", "ccua_al", "lr"):
            assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-5, abs=1e-7), (a["step"], k)
    sa = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    sb = load_checkpoint(ckpt)
    for k in sa["ema"]:
        assert torch.allclose(sa["ema"][k], sb["ema"][k], atol=1e-5), k


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(script_args, env, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", *script_args]
    return subprocess.run(cmd, env=env, cwd=REPO, timeout=timeout, capture_output=True, text=True)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    r = _torchrun(["-m", "tests.diffusion.toy", str(out), ALL, "training.max_steps=4",
                   "training.per_rank_batch_size=2"], _env())
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_metrics(out / "metrics.csv")
    assert [int(x["step"]) for x in rows] == [1, 2, 3, 4]  # rank 0 writes, once per step
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 4
    assert float(rows[0]["images_per_s"]) > 0


def test_ucl_negatives_gathered_across_ranks(tmp_path):
    r = _torchrun([str(Path(__file__).with_name("ddp_ucl_check.py")), str(tmp_path)], _env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "ok0").exists() and (tmp_path / "ok1").exists()


@pytest.mark.parametrize("mode", ["time-embedding", "adaptive-norm", "cross-attention"])
def test_bf16_autocast_path_multi_label(mode, tmp_path):
    recipe = toy_recipe(tmp_path, ["training.precision=bf16", "training.max_steps=2", ALL,
                                   f"model.multi_label_conditioning={mode}"], multi_label=True)
    train(recipe, tmp_path / "run", data=toy_data(multi_label=True))
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in rows)


def test_fine_tune_starts_from_the_source_ema_weights(trained, tmp_path):
    _, src = trained
    recipe = toy_recipe(tmp_path, ["training.max_steps=1", "training.lr=0.0", f"training.init_checkpoint={src}",
                                   "regularizers=[{name: cbdm}]"])
    ckpt = train(recipe, tmp_path / "ft", data=toy_data())
    a, b = load_checkpoint(src)["ema"], load_checkpoint(ckpt)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    bad = toy_recipe(tmp_path, ["training.max_steps=1", f"training.init_checkpoint={tmp_path / 'nope.pt'}"])
    with pytest.raises(CheckpointError, match="not found"):
        train(bad, tmp_path / "ft2", data=toy_data())
