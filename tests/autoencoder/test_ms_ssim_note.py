"""evaluate-autoencoder on images too small for the standard 5-scale MS-SSIM says how many scales
it used (and, with one, that the MS-SSIM column is SSIM) in report.json and report.md."""

import json

import pytest
import torch

from medlt.autoencoder.evaluate import evaluate_autoencoder, ms_ssim_note, reconstruction_metrics, ssim_window
from medlt.metrics.diversity import ms_ssim_settings
from tests.autoencoder.test_evaluate_synth import _Labelled
from tests.autoencoder.tiny import tiny_recipe


def test_single_scale_note_is_true_for_32x32x16_volumes():
    sizes = [32, 32, 16]
    ms = ms_ssim_settings(sizes)
    note = ms_ssim_note(ms, ssim_window(sizes))
    assert note.startswith("MS-SSIM fell back to a single scale (11 px window; the smallest image side is 16 px")
    assert "the same as the SSIM column" in note
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, *sizes, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    m = reconstruction_metrics(x, y, ms)
    assert torch.allclose(m["ms_ssim"], m["ssim"], atol=1e-5) and (m["ssim"] < 0.9).all()  # what the note says


def test_fewer_scales_and_standard():
    assert ms_ssim_note(ms_ssim_settings([64, 64]), 11).startswith("MS-SSIM used 3 of the standard 5 scales (11 px")
    assert ms_ssim_note(ms_ssim_settings([256, 256]), 11) is None
    by_recipe = ms_ssim_note(ms_ssim_settings([256, 256], weights=[0.5, 0.5]), 11)
    assert "2 of the standard 5 scales" in by_recipe and "evaluate.ms_ssim_weights" in by_recipe


def test_report_carries_the_note(ae2d, tmp_path):
    recipe = tiny_recipe(tmp_path)
    rep = evaluate_autoencoder(recipe, ae2d, tmp_path / "ev", dataset=_Labelled(), train_counts=[12, 8, 4])
    saved = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert saved["ms_ssim_note"] == rep["ms_ssim_note"]
    assert rep["ms_ssim_note"].startswith("MS-SSIM fell back to a single scale (7 px window")  # 8 x 8 toy images
    md = (tmp_path / "ev" / "report.md").read_text()
    assert f"Note: {rep['ms_ssim_note']}." in md
    assert rep["overall"]["ms_ssim"] == pytest.approx(rep["overall"]["ssim"], abs=1e-5)
