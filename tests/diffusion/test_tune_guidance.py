"""`medlt tune-guidance`: the documented per-group rule, and an end-to-end sweep on a tiny NIH phantom
(diffusion trained a few steps, a reference classifier checkpoint) writing guidance.json and the plot."""

import json
from pathlib import Path

import pytest
import torch

from medlt.data.labels import LabelSpace
from medlt.diffusion.tune_guidance import choose_scale, load_guidance_scales, tune_guidance
from medlt.errors import MedltError
from medlt.phantom import write_phantom
from medlt.recipe import Recipe, recipe_to_dict


def test_rule_best_fidelity_within_the_best_fid_interval():
    rows = [{"scale": 0.0, "fid": 10.0, "fid_ci95": [8.0, 12.0], "fidelity": 0.2},
            {"scale": 1.0, "fid": 11.5, "fid_ci95": [9.0, 14.0], "fidelity": 0.6},   # within [.., 12]
            {"scale": 2.0, "fid": 12.5, "fid_ci95": [10.0, 15.0], "fidelity": 0.9},  # outside: too far
            {"scale": 4.0, "fid": None, "fid_ci95": None, "fidelity": 0.95}]
    w, why = choose_scale(rows, fallback=0.8)
    assert w == 1.0 and "0.600" in why
    # ties in fidelity go to the smaller scale; a missing interval means the point itself
    rows = [{"scale": 2.0, "fid": 5.0, "fid_ci95": None, "fidelity": 0.5},
            {"scale": 1.0, "fid": 5.0, "fid_ci95": None, "fidelity": 0.5}]
    assert choose_scale(rows, 0.8)[0] == 1.0
    # no FID at all: the best fidelity; nothing: the fallback
    rows = [{"scale": 0.5, "fid": None, "fidelity": 0.3}, {"scale": 3.0, "fid": None, "fidelity": 0.7}]
    assert choose_scale(rows, 0.8)[0] == 3.0
    assert choose_scale([{"scale": 1.0, "fid": None, "fidelity": None}], 0.8) == (0.8, pytest.approx(
        "no FID or fidelity values; the recipe's sampling.guidance_scale"))


def _recipe(root: Path) -> Recipe:
    return Recipe.model_validate({
        "name": "tune", "seed": 1,
        "data": {"format": "nih-cxr-lt", "root": str(root), "image_size": [16, 16], "group_thresholds": [3, 6]},
        "model": {"channels": [8, 16], "attention_levels": [False, False], "num_res_blocks": 1,
                  "num_head_channels": 8, "norm_num_groups": 4},
        "diffusion": {"num_train_timesteps": 50},
        "training": {"max_steps": 2, "per_rank_batch_size": 8, "warmup_steps": 1, "checkpoint_every_steps": 2,
                     "sample_grid_every_steps": 0, "log_every_steps": 1, "device": "cpu"},
        "sampling": {"num_inference_steps": 2, "batch_size": 64},
        "classifier": {"architecture": "resnet18", "widen_factor": 0.125, "device": "cpu"},
        "evaluate": {"batch_size": 64, "kid_num_subsets": 3, "fid_bootstrap_replicates": 5},
    })


def _reference(recipe: Recipe, ls: LabelSpace, path: Path) -> Path:
    """A classifier checkpoint in `medlt classify`'s format (random weights: the machinery, not quality)."""
    from medlt.classify.models import build_classifier_net
    from medlt.utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = build_classifier_net(recipe.classifier, 2, ls.num_classes)
    return save_checkpoint(path, {"model": net.state_dict(), "recipe": recipe_to_dict(recipe),
                                  "label_space": ls.to_dict(), "train_class_counts": [1] * ls.num_classes,
                                  "spatial_dims": 2, "feature_dim": int(net.feature_dim), "meta": {}})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from medlt.data.sources import label_space_for
    from medlt.diffusion.train import train

    root = tmp_path_factory.mktemp("tune")
    write_phantom("nih-cxr-lt", root / "data", num_images=80, image_size=16, imbalance_ratio=0.05, seed=2,
                  per_class_val=2, per_class_test=1)
    recipe = _recipe(root / "data")
    ckpt = train(recipe, root / "run")
    ref = _reference(recipe, label_space_for(recipe.data), root / "ref" / "best.pt")
    return root, recipe, ckpt, ref


def test_sweep_writes_guidance_and_plot(setup):
    root, recipe, ckpt, ref = setup
    lines = []
    res = tune_guidance(recipe, root / "run", ref, root / "g", scales=[1.0, 0.0], per_class=2, show_progress=False,
                        log=lines.append)
    saved = json.loads((root / "g" / "guidance.json").read_text())
    assert saved["scales"] == res["scales"] and set(saved["scales"]) <= {"head", "medium", "tail"}
    groups = set(saved["class_groups"].values())
    assert set(saved["scales"]) == groups and len(groups) >= 2
    assert all(w in (0.0, 1.0) for w in saved["scales"].values())
    assert [r["scale"] for r in saved["per_scale"]] == [0.0, 1.0]  # sorted
    g = next(iter(groups))
    row = saved["per_scale"][0]["groups"][g]
    assert row["fid"] is not None and row["fid"] >= 0 and 0 <= row["fidelity"] <= 1
    assert saved["extractor"].startswith("classifier:resnet18-2d") and saved["split"] == "balanced-val"
    assert saved["generator"]["checkpoint_sha256"] and saved["per_class"] == 2 and saved["sampler"] == "ddim"
    assert len(lines) == 2 and lines[0].startswith("scale 0:")
    png = (root / "g" / "guidance.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # the file reads back as synth's per-group scales
    scales, _ = load_guidance_scales(root / "g" / "guidance.json")
    assert scales == saved["scales"]


def test_cli_and_errors(setup, capsys):
    from medlt.cli import main

    root, recipe, ckpt, ref = setup
    rec = root / "recipe.yaml"
    import yaml

    rec.write_text(yaml.safe_dump(recipe_to_dict(recipe)))

    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("tune-guidance", "--help")
    assert code == 0 and "--reference-classifier" in out and "guidance.json" in out
    code, out, err = run("tune-guidance", rec, "--checkpoint", root / "run", "--out", root / "cli",
                         "--reference-classifier", ref, "--scales", "0,2", "--per-class", "2", "--device", "cpu")
    assert code == 0, err
    assert "guidance scale" in out and (root / "cli" / "guidance.json").is_file()
    code, _, err = run("tune-guidance", rec, "--checkpoint", root / "run", "--out", root / "bad",
                       "--reference-classifier", ref, "--scales", "0,x")
    assert code != 0 and "--scales" in err and not (root / "bad" / "guidance.json").exists()
    with pytest.raises(MedltError, match="does not fit"):
        tune_guidance(recipe, root / "run", ref, root / "bad", scales=[0.0], per_class=2, sampler="rflow",
                      show_progress=False)
    with pytest.raises(MedltError, match=">= 0"):
        tune_guidance(recipe, root / "run", ref, root / "bad", scales=[-1.0], per_class=2, show_progress=False)


def test_guidance_file_errors(tmp_path):
    p = tmp_path / "g.json"
    p.write_text("{")
    with pytest.raises(MedltError, match="not JSON"):
        load_guidance_scales(p)
    p.write_text(json.dumps({"scales": {"rare": 1.0}}))
    with pytest.raises(MedltError, match="unknown group 'rare'"):
        load_guidance_scales(p)
    p.write_text(json.dumps({"scales": {"tail": -1}}))
    with pytest.raises(MedltError, match=r"scales\.tail"):
        load_guidance_scales(p)
    with pytest.raises(MedltError, match="cannot read"):
        load_guidance_scales(tmp_path / "none.json")
