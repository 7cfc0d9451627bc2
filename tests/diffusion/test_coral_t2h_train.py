"""`medlt train` with coral, t2h and cbdm+coral: 2D/3D, single/multi-label, both objectives, latent;
the CORAL head trains, is EMA'd and checkpointed, resume continues it exactly; 2-process DDP (slow)."""


from pathlib import Path

import pytest
import torch

from medlt.autoencoder.train import train_autoencoder
from medlt.diffusion.metrics_log import read_metrics
from medlt.diffusion.sample import load_generator
from medlt.diffusion.train import train
from medlt.utils.checkpoint import load_checkpoint
from tests.autoencoder.tiny import tiny_recipe
from tests.diffusion.test_train import REPO, _env, _torchrun
from tests.diffusion.toy import ToyDataset, toy_data, toy_recipe

METHODS = {
    "coral": ("regularizers=[{name: coral}]", ["coral"]),
    "t2h": ("regularizers=[{name: t2h}]", ["t2h_moved"]),
    "cbdm+coral": ("regularizers=[{name: cbdm}, {name: coral}]", ["cbdm", "coral"]),
}
RFLOW = ["diffusion.objective=rflow", "sampling.sampler=rflow"]


def _finite(rows, names):
    for r in rows:
        for k in ["loss", "mse", *names]:
            assert torch.isfinite(torch.tensor(float(r[k]))), (k, r)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("setting", ["2d", "3d-multi-label", "rflow"])
def test_trains_and_samples(method, setting, tmp_path):
    regs, names = METHODS[method]
    kw = {"multi_label": True, "depth": 4} if setting == "3d-multi-label" else {}
    over = [regs, "training.max_steps=2"] + (RFLOW if setting == "rflow" else [])
    ckpt = train(toy_recipe(tmp_path, over, **kw), tmp_path / "run", data=toy_data(**kw))
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert len(rows) == 2
    _finite(rows, names)
    state = load_checkpoint(ckpt)
    assert ("heads.coral.weight" in state["ema"]) == ("coral" in method)
    gen = load_generator(ckpt)  # sampling ignores the head
    labels = torch.eye(3)[:2] if kw else torch.tensor([0, 2])
    x = gen.generate(labels, [1, 2], guidance_scale=1.0, num_inference_steps=2)
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("mode", ["time-embedding", "adaptive-norm", "cross-attention"])
def test_bf16_autocast_multi_label_with_all_three(mode, tmp_path):
    regs = "regularizers=[{name: cbdm}, {name: coral}, {name: t2h}]"
    recipe = toy_recipe(tmp_path, ["training.precision=bf16", "training.max_steps=2", regs,
                                   f"model.multi_label_conditioning={mode}"], multi_label=True)
    train(recipe, tmp_path / "run", data=toy_data(multi_label=True))
    _finite(read_metrics(tmp_path / "run" / "metrics.csv"), ["cbdm", "coral", "t2h_moved"])


def test_coral_head_trains_and_resume_continues_it(tmp_path):
    sets = [METHODS["cbdm+coral"][0], "training.checkpoint_every_steps=2", "training.lr=3e-2"]
    full = train(toy_recipe(tmp_path, [*sets, "training.max_steps=4"]), tmp_path / "full", data=toy_data())
    train(toy_recipe(tmp_path, [*sets, "training.max_steps=2"]), tmp_path / "cut", data=toy_data())
    cut_state = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    resumed = train(toy_recipe(tmp_path, [*sets, "training.max_steps=4"]), tmp_path / "cut", resume=True,
                    data=toy_data())
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    for part in ("model", "ema"):
        for k in ("heads.coral.weight", "heads.coral.bias"):
            assert torch.allclose(a[part][k], b[part][k], atol=1e-6), (part, k)
    # the head is in the optimizer and moved between step 2 and 4, in the raw and the EMA weights
    assert not torch.allclose(cut_state["model"]["heads.coral.weight"], b["model"]["heads.coral.weight"])
    assert not torch.allclose(cut_state["ema"]["heads.coral.weight"], b["ema"]["heads.coral.weight"])
    n_params = len(list(a["optimizer"]["state"]))
    assert n_params == len(a["model"]) - sum(1 for k in a["model"] if "running" in k or "num_batches" in k)
    for x, y in zip(read_metrics(tmp_path / "full" / "metrics.csv"), read_metrics(tmp_path / "cut" / "metrics.csv"),
                    strict=True):
        for k in ("loss", "mse", "cbdm", "coral"):
            assert float(x[k]) == pytest.approx(float(y[k]), rel=1e-5, abs=1e-7), (x["step"], k)


def test_fine_tuning_a_plain_checkpoint_with_coral_keeps_a_fresh_head(tmp_path):
    src = train(toy_recipe(tmp_path, ["training.max_steps=1"]), tmp_path / "plain", data=toy_data())
    ckpt = train(toy_recipe(tmp_path, [METHODS["coral"][0], "training.max_steps=1",
                                       f"training.init_checkpoint={src}"]), tmp_path / "ft", data=toy_data())
    assert "heads.coral.weight" in load_checkpoint(ckpt)["ema"]


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ae")
    train_autoencoder(tiny_recipe(tmp), tmp / "ae", dataset=ToyDataset())
    return tmp / "ae"


@pytest.mark.parametrize("method", list(METHODS))
def test_latent_diffusion(method, autoencoder, tmp_path):
    regs, names = METHODS[method]
    recipe = tiny_recipe(tmp_path, autoencoder=autoencoder, overrides=[regs, "training.max_steps=2",
                                                                      "training.sample_grid_every_steps=0"])
    ckpt = train(recipe, tmp_path / "run", data=toy_data())
    _finite(read_metrics(tmp_path / "run" / "metrics.csv"), names)
    gen = load_generator(ckpt)
    x = gen.generate(torch.tensor([0, 2]), [1, 2], guidance_scale=1.0, num_inference_steps=2)
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()


@pytest.mark.slow
def test_ddp_gradients_of_the_coral_head_are_averaged_across_ranks(tmp_path):
    r = _torchrun([str(Path(__file__).with_name("ddp_coral_check.py")), str(tmp_path)], _env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "ok0").exists() and (tmp_path / "ok1").exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_cbdm_coral_t2h(tmp_path):
    """Per rank: T2H's candidate pool and CORAL's positives/negatives are that rank's batch; DDP
    averages the gradients (the head included: it runs inside the model's forward)."""
    out = tmp_path / "ddp"
    r = _torchrun(["-m", "tests.diffusion.toy", str(out),
                   "regularizers=[{name: cbdm}, {name: coral}, {name: t2h}]", "training.max_steps=3",
                   "training.per_rank_batch_size=4"], _env())
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_metrics(out / "metrics.csv")
    assert [int(x["step"]) for x in rows] == [1, 2, 3]
    _finite(rows, ["cbdm", "coral", "t2h_moved"])
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 3 and "heads.coral.weight" in state["model"]


PHANTOMS = {  # recipe -> phantom layout and its CLI arguments
    "nih_cxr_lt": ("nih-cxr-lt", []),
    "mimic_cxr_lt": ("mimic-cxr-lt", []),
    "ct_rate": ("ct-rate", ["-n", "12"]),
    "nih_cxr_lt_latent": ("nih-cxr-lt", ["-n", "120", "-s", "128"]),
    "ct_rate_latent": ("ct-rate", ["-n", "12"]),
}
SHORT = ["training.max_steps=2", "training.per_rank_batch_size=4", "training.sample_grid_every_steps=0",
         "training.log_every_steps=1"]
AE_SHORT = ["autoencoder.training.max_steps=4", "autoencoder.training.checkpoint_every_steps=4",
            "autoencoder.training.scale_factor_images=16", "autoencoder.training.per_rank_batch_size=4"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("recipe", list(PHANTOMS))
def test_medlt_train_on_every_phantom_recipe(recipe, tmp_path, capsys):
    """`medlt train` with coral, t2h and cbdm+coral on every phantom recipe (2D, CT, latent 2D and CT;
    short budgets), through the CLI."""
    from tests.cli_run import run_cli

    layout, args = PHANTOMS[recipe]
    ph = tmp_path / "ph"
    assert run_cli(["phantom", "--layout", layout, "--out", ph, *args], capsys)[0] == 0
    path = REPO / "recipes" / "phantom" / f"{recipe}.yaml"
    base = [f"data.root={ph}", f"data.labels={ph}"]
    if recipe.endswith("_latent"):
        base += [f"model.latent.autoencoder={tmp_path / 'ae'}", *AE_SHORT]
        code, _, err = run_cli(["train-autoencoder", path, "--out", tmp_path / "ae",
                                *[x for kv in base for x in ("--set", kv)]], capsys)
        assert code == 0, err[-2000:]
    for method, (regs, names) in METHODS.items():
        sets = [*base, *SHORT, regs]
        out = tmp_path / method
        code, _, err = run_cli(["train", path, "--out", out, *[x for kv in sets for x in ("--set", kv)]], capsys)
        assert code == 0, (method, err[-2000:])
        rows = read_metrics(out / "metrics.csv")
        assert len(rows) == 2
        _finite(rows, names)
