"""medlt.utils.device: one check of a device request, called by every verb that takes a device, so
asking for CUDA on this CPU-only torch is one line naming the option or recipe key, before any
file is written."""

import re
from pathlib import Path

import pytest
import torch

from medlt.errors import MedltError, RecipeError
from medlt.utils.device import resolve_device
from tests.cli_run import run_cli

ROOT = Path(__file__).resolve().parents[2]
NIH = ROOT / "recipes" / "phantom" / "nih_cxr_lt.yaml"
NIH_LATENT = ROOT / "recipes" / "phantom" / "nih_cxr_lt_latent.yaml"
BENCH = ROOT / "recipes" / "phantom" / "bench_cpu.yaml"

cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_not_a_device_names_the_option_or_key():
    with pytest.raises(MedltError, match=r"^--device gpu: not a device; use auto, cpu, cuda or cuda:N$"):
        resolve_device("gpu", "--device")
    with pytest.raises(RecipeError, match=r"^recipe key 'classifier.device': cuda:x: not a device"):
        resolve_device("cuda:x", "classifier.device")


@cpu_only
def test_cuda_on_this_torch():
    kind = "this torch has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
    with pytest.raises(MedltError, match=rf"^--device cuda: {kind} \(torch {re.escape(torch.__version__)}") as e:
        resolve_device("cuda", "--device")
    assert not isinstance(e.value, RecipeError)  # an option: exit 1, a recipe key: exit 2
    with pytest.raises(RecipeError, match=rf"^recipe key 'training.device': cuda:1: {kind}"):
        resolve_device("cuda:1", "training.device")


def test_cuda_build_without_gpu_and_missing_index(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MedltError, match=r"--device cuda: no CUDA GPU is visible .*CUDA 12.4.*CUDA_VISIBLE_DEVICES"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(MedltError, match=r"--device cuda:2: only 2 CUDA device\(s\) are visible \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


VERBS = {
    "train": (["train", NIH, "--out", "{out}", "--set", "training.device=cuda"], "recipe key 'training.device'", 2),
    "train-autoencoder": (["train-autoencoder", NIH_LATENT, "--out", "{out}", "--set",
                           "autoencoder.training.device=cuda"], "recipe key 'autoencoder.training.device'", 2),
    "classify": (["classify", NIH, "--out", "{out}", "--set", "classifier.device=cuda"],
                 "recipe key 'classifier.device'", 2),
    "oracle": (["oracle", NIH, "--out", "{out}", "--set", "classifier.device=cuda"], "recipe key 'classifier.device'", 2),
    "evaluate": (["evaluate", NIH, "--classifier", "{out}/clf", "--out", "{out}", "--set", "classifier.device=cuda"],
                 "recipe key 'classifier.device'", 2),
    "tune-guidance": (["tune-guidance", NIH, "--checkpoint", "{out}/run", "--reference-classifier", "{out}/clf",
                       "--out", "{out}", "--device", "cuda"], "--device cuda", 1),
    "evaluate-autoencoder": (["evaluate-autoencoder", NIH_LATENT, "--autoencoder", "{out}/ae", "--out", "{out}",
                              "--device", "cuda"], "--device cuda", 1),
    "sample": (["sample", NIH, "--checkpoint", "{out}/run", "--class", "Effusion", "--out", "{out}", "--device",
                "cuda"], "--device cuda", 1),
    "synth": (["synth", NIH, "--checkpoint", "{out}/run", "--out", "{out}", "--device", "cuda"], "--device cuda", 1),
    "bench": (["bench", BENCH, "--preset", "gpu", "--out", "{out}"], "recipe key 'training.device'", 2),
}


@cpu_only
@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_refuses_cuda_in_one_line_and_writes_nothing(verb, tmp_path, capsys):
    args, where, exit_code = VERBS[verb]
    out = tmp_path / "out"
    code, stdout, err = run_cli([str(a).replace("{out}", str(out)) for a in args], capsys)
    lines = err.strip().splitlines()
    assert code == exit_code and len(lines) == 1, err
    assert lines[0].startswith(f"error: {where}") and "no CUDA" in lines[0] and "Traceback" not in err
    if verb == "bench":
        assert "(--preset gpu sets it)" in lines[0]
    assert not out.exists()
