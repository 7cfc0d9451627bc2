"""`medlt data validate|stats|preview` through the real entry point (medlt.cli.main)."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medlt.cli import main
from tests.data.builders import CT_SPLITS, write_ct_rate, write_nih


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def _recipe_file(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return str(p)


NIH_YAML = "name: t\ndata:\n  format: nih-cxr-lt\n  root: nih\n  image_size: [32, 24]\n  group_thresholds: [2, 3]\n"


def test_validate_ok_and_all_problems(tmp_path, capsys):
    files = write_nih(tmp_path / "nih", h=64, w=48)
    rec = _recipe_file(tmp_path, NIH_YAML)
    code, out, _ = _run(["data", "validate", rec], capsys)
    assert code == 0 and out.startswith("ok: 36 CXR images, 20 classes (single-label)")
    os.remove(tmp_path / "nih" / "train_0002.png")
    df = pd.read_csv(files["test"], dtype=str)
    df.loc[3, "Mass"] = "1"
    df.to_csv(files["test"], index=False)
    code, out, err = _run(["data", "validate", rec], capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("error: /")]
    assert code != 0 and len(lines) == 2
    assert "nih-cxr-lt_single-label_test.csv:row 4: [several-positives]" in err
    assert "nih-cxr-lt_single-label_train.csv:row 3: [missing-file]" in err
    assert "Traceback" not in err


def test_validate_set_override_and_bad_key(tmp_path, capsys):
    write_nih(tmp_path / "other", h=32, w=32)
    rec = _recipe_file(tmp_path, NIH_YAML)
    code, out, _ = _run(["data", "validate", rec, "--set", f"data.root={tmp_path / 'other'}"], capsys)
    assert code == 0 and "ok:" in out
    code, _, err = _run(["data", "validate", rec, "--set", "data.rot=x"], capsys)
    assert code != 0 and "data.rot" in err and "did you mean 'root'" in err


def test_stats_table_and_json(tmp_path, capsys):
    write_nih(tmp_path / "nih", h=32, w=32)
    rec = _recipe_file(tmp_path, NIH_YAML)
    code, out, _ = _run(["data", "stats", rec, "--json"], capsys)
    s = json.loads(out)
    assert code == 0
    assert s["splits"]["train"]["counts"]["No Finding"] == 2 and s["splits"]["train"]["images"] == 24
    assert s["splits"]["balanced-test"]["counts"]["Infiltration"] == 1
    # thresholds (2, 3): counts 2 -> medium, 1 -> tail
    assert s["groups"]["No Finding"] == "medium" and s["groups"]["Hernia"] == "tail"
    assert s["group_sizes"] == {"head": 0, "medium": 4, "tail": 16} and s["imbalance_ratio"] == 2.0
    code, out, _ = _run(["data", "stats", rec], capsys)
    assert code == 0 and "No Finding" in out and "imbalance ratio 2.0" in out and "tail" in out


def test_preview_cxr_pngs_upright_and_named_by_id(tmp_path, capsys):
    write_nih(tmp_path / "nih", h=64, w=48)
    rec = _recipe_file(tmp_path, NIH_YAML)
    code, out, _ = _run(["data", "preview", rec, "--out", str(tmp_path / "p"), "--split", "test",
                         "--limit", "3"], capsys)
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert names == ["contact_sheet.png", "test_0000.png", "test_0001.png", "test_0002.png"]
    img = np.asarray(Image.open(tmp_path / "p" / "test_0000.png"))
    assert img.shape == (32, 24)
    assert img[:5].mean() > 200 and img[-5:, 10:].mean() < 40  # bright top band, dark bottom


def test_preview_ct_three_planes(tmp_path, capsys):
    write_ct_rate(tmp_path / "ct", counts={"train": 2, "valid": 1}, shape=(20, 16, 10))
    rec = _recipe_file(tmp_path, "name: t\ndata:\n  format: ct-rate\n  root: ct\n  image_size: [20, 16, 10]\n"
                       "  ct: {spacing_mm: [2, 2, 4], crop_size: null}\n"
                       f"  splits: {json.dumps(CT_SPLITS)}\n")
    code, out, err = _run(["data", "preview", rec, "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    img = np.asarray(Image.open(tmp_path / "p" / "train_1_a_1.png"))
    # axial (Y=16 rows x X=20) | coronal (Z=10 x X=20) | sagittal (Z=10 x Y=16), one column gap each;
    # voxels are 2 x 2 x 4 mm, so Z rows are doubled to the physical aspect
    assert img.shape == (20, 20 + 1 + 20 + 1 + 16)
    axial = img[:16, :20].astype(float)
    # RAS volume whose intensity falls toward the patient's left: displayed rising left -> right
    assert axial[8, 15] > axial[8, 4]
    assert (tmp_path / "p" / "contact_sheet.png").is_file()


def test_data_help_lists_verbs(capsys):
    code, out, _ = _run(["data", "--help"], capsys)
    assert code == 0 and all(v in out for v in ("validate", "stats", "preview"))
