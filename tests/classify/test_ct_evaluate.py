"""3D multi-label path: a 3D classifier on NIfTI volumes, 3D-feature FID and 2.5D FID."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import fakect  # noqa: E402


@pytest.mark.slow  # ~25 s on 2 shared cores (NIfTI resampling per access)
def test_ct_classify_and_evaluate(tmp_path, capsys):
    from medlt.cli import main
    from medlt.metrics import frechet_distance

    (tmp_path / "ct").mkdir()
    (tmp_path / "syn").mkdir()
    recipe = fakect.make_ct(tmp_path / "ct", tmp_path / "syn")
    for args in (["classify", recipe, "--out", tmp_path / "clf"],
                 ["evaluate", recipe, "--classifier", tmp_path / "clf", "--synthetic", tmp_path / "syn",
                  "--out", tmp_path / "ev", "--set", "evaluate.min_real_per_class=2",
                  "--set", "evaluate.min_synthetic_per_class=2"],
                 ["evaluate", recipe, "--classifier", tmp_path / "clf", "--synthetic", tmp_path / "syn",
                  "--out", tmp_path / "ev_sub", "--set", "evaluate.center_slices_ratio=0.5",
                  "--set", "evaluate.slice_stride=2", "--set", "evaluate.roles=[test]"]):
        try:
            main(list(map(str, args)))
        except SystemExit as e:
            assert not e.code, capsys.readouterr().err
    rep = json.loads((tmp_path / "ev" / "report.json").read_text())
    m = rep["classification"]["test"]
    assert 0 <= m["mean_per_class_balanced_accuracy_tpr_tnr"] <= 1 and len(m["per_class_auroc"]) == 2
    assert "skipped" in rep["classification"]["test_longtail"]
    gen = rep["generation"]
    name3d = gen["feature_extractor"]
    assert name3d.startswith("classifier:resnet18-3d")
    f25 = gen["fid_2_5d"]
    assert f25["feature_extractor"] == "random-init-resnet18-2d(seed=0)"
    # every slice along each axis is one sample: volumes (16 x 16 x 8) x extent
    assert f25["slices_per_volume"] == {"axial": 8, "coronal": 16, "sagittal": 16}
    n_real, n_syn = 18, 6
    for plane, extent in (("axial", 8), ("coronal", 16), ("sagittal", 16)):
        assert f25["n_slices"][plane] == {"real": n_real * extent, "synthetic": n_syn * extent}
        assert f25["per_plane"][plane]["pooled"]["n_real"] == n_real * extent
    per_plane = [f25["per_plane"][p]["scopes"]["overall"]["fid"] for p in ("axial", "coronal", "sagittal")]
    assert f25["mean_of_planes"]["overall"] == pytest.approx(sum(per_plane) / 3)
    assert all(v > 0 for v in per_plane)
    assert f25["fid_3d_features"][name3d] == gen["by_extractor"][name3d]["fid_kid"]["scopes"]["overall"]["fid"]
    assert gen["diversity"]["per_class_ms_ssim"]["Nodule"] is not None
    assert gen["diversity"]["settings"]["kernel_size"] == 3  # 8-px side, 2 scales from the recipe
    sub = json.loads((tmp_path / "ev_sub" / "report.json").read_text())["generation"]["fid_2_5d"]
    # central half, every 2nd slice: axial range(2, 6, 2), coronal/sagittal range(4, 12, 2)
    assert sub["slices_per_volume"] == {"axial": 2, "coronal": 4, "sagittal": 4}
    assert sub["n_slices"]["axial"] == {"real": n_real * 2, "synthetic": n_syn * 2}
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
    fk = gen["by_extractor"][name3d]["fid_kid"]
    assert fk["pooled"]["fid"] == pytest.approx(frechet_distance(fr, fs), rel=1e-4)
    # multi-label per-class moments: every volume carrying the class
    lab = torch.stack([torch.as_tensor(real[i]["label"]) for i in range(len(real))])
    slab = torch.stack([torch.as_tensor(syn[i]["label"]) for i in range(len(syn))])
    nod, snod = lab[:, 0] > 0.5, slab[:, 0] > 0.5
    assert fk["per_class"]["Nodule"]["n_real"] == int(nod.sum()) == 10
    assert fk["per_class"]["Nodule"]["fid"] == pytest.approx(frechet_distance(fr[nod], fs[snod]), rel=1e-4)
    assert "2.5D" in (tmp_path / "ev" / "report.md").read_text()
