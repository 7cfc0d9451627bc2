"""The phantom oracle (`medlt oracle`): the recipe's classifier trained on a balanced phantom from
another seed, used as the class fidelity judge."""

import json
from pathlib import Path

import pandas as pd
import pytest

from medlt.classify.oracle import build_oracle
from medlt.errors import DataError
from medlt.phantom import write_phantom
from medlt.recipe import Recipe
from tests.cli_run import run_cli


def phantom_recipe(root: Path, size: int = 32, **classifier) -> Recipe:
    clf = {"architecture": "resnet18", "widen_factor": 0.125, "epochs": 6, "per_rank_batch_size": 32, "lr": 0.005,
           "device": "cpu", "augment_rotation_deg": 0, **classifier}
    return Recipe.model_validate({"name": "oracle-test", "seed": 0, "data": {
        "format": "nih-cxr-lt", "root": str(root), "image_size": [size, size], "group_thresholds": [3, 6]},
        "evaluate": {"roles": ["test"], "bootstrap_resamples": 0, "kid_subset_size": 5, "kid_num_subsets": 2,
                     "ms_ssim_max_pairs": 5, "grid_images_per_class": 1, "memorization_pairs_saved": 1},
        "classifier": clf})




@pytest.fixture(scope="module")
def evaluated_phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle") / "p"
    write_phantom("nih-cxr-lt", out, num_images=60, image_size=32, imbalance_ratio=0.05, seed=3, per_class_val=2,
                  per_class_test=3)
    return out


def test_oracle_run_layout_name_and_resume(evaluated_phantom, tmp_path):
    r = phantom_recipe(evaluated_phantom, size=16, epochs=1)
    res = build_oracle(r, tmp_path / "o", per_class=1, show_progress=False)
    marker = json.loads((tmp_path / "o" / "phantom" / "medlt_phantom.json").read_text())["parameters"]
    assert marker["seed"] == 4 and marker["per_class"] == 1 and marker["image_size"] == 32  # the data's size
    train = pd.read_csv(tmp_path / "o" / "phantom" / "nih-cxr-lt_single-label_train.csv")
    assert len(train) == 20 and res["train_images"] == 20
    from medlt.classify import load_classifier
    from medlt.classify.reference import reference_name, reference_record

    clf = load_classifier(tmp_path / "o")
    assert clf.meta["reference_kind"] == "phantom-oracle" and clf.meta["oracle_phantom_seed"] == "4"
    assert reference_name(clf) == res["oracle"] == f"classifier:resnet18-2d[train=phantom-oracle]@{clf.checkpoint_sha256[:12]}"
    rec = reference_record(clf, "--reference-classifier")
    assert rec["oracle"]["per_class"] == "1" and rec["oracle"]["evaluated_phantom_seed"] == "3"
    saved = json.loads((tmp_path / "o" / "oracle.json").read_text())
    assert saved["test_on_evaluated_phantom"]["split"] == "balanced-test"
    assert saved["test_on_evaluated_phantom"]["n"] == 60
    # re-running resumes: same checkpoint, no new phantom
    mtime = (tmp_path / "o" / "phantom" / "medlt_phantom.json").stat().st_mtime_ns
    again = build_oracle(r, tmp_path / "o", per_class=1, show_progress=False)
    assert again["checkpoint_sha256"] == res["checkpoint_sha256"]
    assert (tmp_path / "o" / "phantom" / "medlt_phantom.json").stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="another phantom"):
        build_oracle(r, tmp_path / "o", per_class=2, show_progress=False)


def test_oracle_error_paths(evaluated_phantom, tmp_path, capsys):
    r = phantom_recipe(evaluated_phantom)
    with pytest.raises(DataError, match="--seed 3 is the seed of the evaluated phantom"):
        build_oracle(r, tmp_path / "o", seed=3)
    m = r.model_copy(update={"data": r.data.model_copy(update={"format": "manifest"})})
    with pytest.raises(DataError, match="needs a phantom in an official layout"):
        build_oracle(m, tmp_path / "o")
    (tmp_path / "empty").mkdir()
    e = r.model_copy(update={"data": r.data.model_copy(update={"root": tmp_path / "empty"})})
    with pytest.raises(DataError, match="not a `medlt phantom` folder"):
        build_oracle(e, tmp_path / "o")
    rec = tmp_path / "r.yaml"
    rec.write_text(f"name: x\ndata:\n  format: nih-cxr-lt\n  root: {tmp_path / 'empty'}\n")
    code, _, err = run_cli(["oracle", rec, "--out", tmp_path / "o"], capsys)
    assert code != 0 and "not a `medlt phantom` folder" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def _phantom_as_synthetic(phantom: Path, split_csv: str, out: Path) -> None:
    """A synth-like folder (manifest.csv, source=synthetic) holding a real phantom split: a
    'perfect generator' whose images come from the true class-conditionals."""
    df = pd.read_csv(phantom / split_csv)
    (out / "images").mkdir(parents=True)
    rows = []
    for _, row in df.iterrows():
        (out / "images" / row["id"]).write_bytes((phantom / row["id"]).read_bytes())
        rows.append({"id": f"syn-{row['id']}", "image": f"images/{row['id']}", "patient_id": f"s{row['subject_id']}",
                     "split": "train", **{c: int(row[c]) for c in df.columns if c not in ("id", "subject_id")},
                     "source": "synthetic"})
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)


@pytest.mark.slow
def test_oracle_beats_chance_and_judges_a_perfect_generator(evaluated_phantom, tmp_path, capsys):
    r = phantom_recipe(evaluated_phantom)
    res = build_oracle(r, tmp_path / "o", per_class=8, show_progress=False)
    bacc = res["test_on_evaluated_phantom"]["balanced_accuracy"]
    assert bacc > 0.25, bacc  # chance: 1/20
    # class fidelity of a perfect generator under the oracle = the oracle's recall on those images
    other = tmp_path / "other"
    write_phantom("nih-cxr-lt", other, per_class=1, image_size=32, seed=11, per_class_val=1, per_class_test=3)
    _phantom_as_synthetic(other, "nih-cxr-lt_single-label_balanced-test.csv", tmp_path / "syn")
    yaml = tmp_path / "recipe.yaml"
    from medlt.recipe import dump_resolved

    dump_resolved(r, yaml)
    code, out, err = run_cli(["evaluate", yaml, "--classifier", tmp_path / "o", "--synthetic", tmp_path / "syn",
                              "--reference-classifier", tmp_path / "o", "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    fid = json.loads((tmp_path / "eval" / "report.json").read_text())["generation"]["class_fidelity"]
    assert fid["reference_classifier"]["trained_on"] == "phantom-oracle"
    assert fid["reference_classifier"]["real_test"]["balanced_accuracy"] == pytest.approx(bacc)
    from medlt.classify.reference import load_reference, reference_test_scores

    other_recipe = r.model_copy(update={"data": r.data.model_copy(update={"root": other, "labels": other})})
    from medlt.data.table import load_table

    ref = load_reference(tmp_path / "o", r, load_table(r).label_space)
    groups = [fid["per_class"][n]["group"] for n in ref.label_space.names]
    recall = reference_test_scores(other_recipe, ref, groups, "test")["per_class_recall"]
    assert [fid["per_class"][n]["fidelity"] for n in ref.label_space.names] == pytest.approx(recall)
    assert fid["mean_class_fidelity"] > 0.25
