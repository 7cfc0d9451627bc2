"""3D multi-label path: a 3D classifier on NIfTI volumes, 3D-feature FID and 2.5D FID."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import fakect  # noqa: E402

from medlt.classify.evaluation import middle_slices  # noqa: E402


def test_middle_slices_planes():
    v = torch.arange(2 * 1 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 1, 4, 6, 8)
    s = middle_slices(v)
    assert s["axial"].shape == (2, 1, 4, 6) and torch.equal(s["axial"], v[..., 4])
    assert s["coronal"].shape == (2, 1, 4, 8) and torch.equal(s["coronal"], v[:, :, :, 3, :])
    assert s["sagittal"].shape == (2, 1, 6, 8) and torch.equal(s["sagittal"], v[:, :, 2])


@pytest.mark.slow  # ~25 s on 2 shared cores (NIfTI resampling per access)
def test_ct_classify_and_evaluate(tmp_path, capsys):
    from medlt.cli import main
    from medlt.metrics import frechet_distance

    (tmp_path / "ct").mkdir()
    (tmp_path / "syn").mkdir()
    recipe = fakect.make_ct(tmp_path / "ct", tmp_path / "syn")
    for args in (["classify", recipe, "--out", tmp_path / "clf"],
                 ["evaluate", recipe, "--classifier", tmp_path / "clf", "--synthetic", tmp_path / "syn",
                  "--out", tmp_path / "ev"]):
        try:
            main(list(map(str, args)))
        except SystemExit as e:
            assert not e.code, capsys.readouterr().err
    rep = json.loads((tmp_path / "ev" / "report.json").read_text())
    m = rep["classification"]["test"]
    assert 0 <= m["mean_per_class_balanced_accuracy_tpr_tnr"] <= 1 and len(m["per_class_auroc"]) == 2
    assert "skipped" in rep["classification"]["test_longtail"]
    gen = rep["generation"]
    assert gen["fid_3d_features"]["feature_extractor"].startswith("classifier:resnet18-3d")
    f25 = gen["fid_2_5d"]
    assert f25["feature_extractor"] == "random-init-resnet18-2d(seed=0)"
    per_plane = [f25["per_plane"][p]["scopes"]["overall"]["fid"] for p in ("axial", "coronal", "sagittal")]
    assert f25["per_scope_mean"]["overall"] == pytest.approx(sum(per_plane) / 3)
    assert all(v > 0 for v in per_plane)
    assert gen["diversity"]["per_class_ms_ssim"]["Nodule"] is not None
    # the 3D FID equals frechet_distance on the classifier's own 3D features
    from medlt.classify import load_classifier
    from medlt.classify.data import synthetic_recipe
    from medlt.data.loaders import build_dataset
    from medlt.recipe import load_recipe

    r = load_recipe(recipe)
    clf = load_classifier(tmp_path / "clf")
    real, syn = build_dataset(r, "train"), build_dataset(synthetic_recipe(r, tmp_path / "syn"), "train")
    fr = clf.features(torch.stack([real[i]["image"] for i in range(len(real))]))
    fs = clf.features(torch.stack([syn[i]["image"] for i in range(len(syn))]))
    assert gen["fid_3d_features"]["overall"] == pytest.approx(frechet_distance(fr, fs), rel=1e-4)
    assert "2.5D" in (tmp_path / "ev" / "report.md").read_text()
