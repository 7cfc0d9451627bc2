"""train-autoencoder: real AutoencoderKL steps on a toy set (2D and 3D), losses, exact resume,
the stored latent scale factor, error paths."""

import pytest
import torch

from medlt.autoencoder.load import load_autoencoder
from medlt.autoencoder.losses import kl_per_sample
from medlt.autoencoder.scale import encode_means
from medlt.autoencoder.train import train_autoencoder
from medlt.diffusion.metrics_log import read_metrics
from medlt.errors import CheckpointError, MedltError, RecipeError
from medlt.utils.checkpoint import load_checkpoint
from tests.autoencoder.tiny import tiny_recipe
from tests.diffusion.toy import ToyDataset


def _l1(run):
    return [float(r["l1"]) for r in read_metrics(run / "metrics.csv")]


@pytest.mark.parametrize("which", ["ae2d", "ae3d"])
def test_trains_and_l1_decreases(which, request):
    run = request.getfixturevalue(which)
    l1 = _l1(run)
    assert len(l1) == 6
    assert sum(l1[-2:]) / 2 < 0.8 * sum(l1[:2]) / 2, l1
    assert (run / "reconstructions" / "step_0000006.png").is_file()
    st = load_checkpoint(run / "checkpoints" / "last.pt")
    d = 3 if which == "ae3d" else 2
    assert st["spatial_dims"] == d and st["latent_size"] == ([4, 4, 2] if d == 3 else [4, 4])
    assert st["latent_channels"] == 2


def test_kl_formula():
    mu, sigma = torch.tensor([[[0.5, -1.0]]]), torch.tensor([[[2.0, 0.5]]])
    want = 0.5 * sum(m * m + s * s - torch.log(s * s) - 1 for m, s in zip(mu.flatten(), sigma.flatten(),
                                                                          strict=True))
    assert torch.allclose(kl_per_sample(mu, sigma), want.reshape(1))
    assert torch.allclose(kl_per_sample(torch.zeros(2, 3), torch.ones(2, 3)), torch.zeros(2))


def test_scale_factor_is_one_over_std_of_training_means(ae2d):
    ae = load_autoencoder(ae2d)
    mu = encode_means(ae.model, ToyDataset(), batch_size=4, device=torch.device("cpu"), limit=16)
    assert mu.shape == (16, 2, 4, 4)
    assert ae.scale_factor == pytest.approx(1.0 / float(mu.double().std(unbiased=False)), rel=1e-5)
    z = ae.encode_scaled(ToyDataset()[0]["image"][None])
    assert torch.allclose(z, ae.model.encode(ToyDataset()[0]["image"][None])[0] * ae.scale_factor)
    x = ae.decode_scaled(z)
    assert torch.allclose(x, ae.model.decode(z / ae.scale_factor).clamp(-1, 1), atol=1e-6)


def test_resume_is_exact_with_adversarial_term_and_ema(tmp_path):
    extra = {"autoencoder": {"adversarial": {"start_step": 2, "channels": 8, "num_layers": 1},
                             "training": {**tiny_recipe(tmp_path).autoencoder.training.model_dump(mode="json"),
                                          "ema_decay": 0.9, "max_steps": 5, "checkpoint_every_steps": 3,
                                          "recon_grid_every_steps": 0}}}
    full = tiny_recipe(tmp_path, extra=extra)
    train_autoencoder(full, tmp_path / "a", dataset=ToyDataset())
    part = tiny_recipe(tmp_path, extra=extra, overrides=["autoencoder.training.max_steps=3"])
    train_autoencoder(part, tmp_path / "b", dataset=ToyDataset())
    with pytest.raises(MedltError, match="--resume"):
        train_autoencoder(full, tmp_path / "b", dataset=ToyDataset())
    changed = tiny_recipe(tmp_path, extra=extra, overrides=["autoencoder.kl_weight=0.1"])
    with pytest.raises(RecipeError, match="autoencoder.kl_weight"):
        train_autoencoder(changed, tmp_path / "b", resume=True, dataset=ToyDataset())
    train_autoencoder(full, tmp_path / "b", resume=True, dataset=ToyDataset())
    a, b = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt"), load_checkpoint(
        tmp_path / "b" / "checkpoints" / "last.pt")
    for key in ("model", "ema", "discriminator"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert a["scale_factor"] == b["scale_factor"]
    rows = read_metrics(tmp_path / "a" / "metrics.csv")
    assert rows[0]["adv_g"] == "" and float(rows[-1]["adv_g"]) > 0 and float(rows[-1]["adv_d"]) > 0
    assert [r["step"] for r in read_metrics(tmp_path / "b" / "metrics.csv")] == ["1", "2", "3", "4", "5"]
    assert (tmp_path / "b" / "resume_history.yaml").is_file()


def test_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train_autoencoder(tiny_recipe(tmp_path), tmp_path / "none", resume=True, dataset=ToyDataset())
    odd = tiny_recipe(tmp_path, size=7)
    with pytest.raises(RecipeError, match="data.image_size.*divisible by 2"):
        train_autoencoder(odd, tmp_path / "odd", dataset=ToyDataset(size=7))
    with pytest.raises(RecipeError, match="perceptual.weights.*no such file"):
        train_autoencoder(tiny_recipe(tmp_path, extra={"autoencoder": {"perceptual": {
            "weights": str(tmp_path / "resnet50.pth")}}}), tmp_path / "p", dataset=ToyDataset())
    with pytest.raises(CheckpointError, match="missing: no autoencoder checkpoint"):
        load_autoencoder(tmp_path / "missing")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not a medlt autoencoder"):
        load_autoencoder(tmp_path / "other.pt")


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                        str(Path(__file__).with_name("ddp_train.py")), str(tmp_path / "run")], env=env, cwd=repo,
                       timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "run" / "ok").is_file()
    st = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert st["step"] == 3 and "discriminator" in st and st["scale_factor"] > 0
