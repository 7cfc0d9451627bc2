"""`medlt evaluate` meeting a truncated test image: one line naming the file and its row, a
non-zero exit, no report folder; with data.on_bad_image=skip the report folder lists it."""

import json

import pytest

from medlt.cli import main
from medlt.data import bad_images
from tests.data.test_bad_images import recipe_file, truncate, write_manifest_data

CLASSIFIER = ("  \nclassifier:\n  architecture: resnet18\n  widen_factor: 0.125\n  epochs: 1\n"
              "  per_rank_batch_size: 4\n  device: cpu\n")


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_evaluate_bad_test_image(tmp_path, capsys):
    bad_images.clear_skipped()
    root = tmp_path / "d"
    write_manifest_data(root, n_test=4)
    rec = recipe_file(tmp_path, root, CLASSIFIER)
    try:
        main(["classify", rec, "--out", str(tmp_path / "clf")])
    except SystemExit as e:
        assert not e.code
    capsys.readouterr()
    truncate(root / "img" / "test_1.png")
    out = tmp_path / "eval"
    code, _, err = _run(["evaluate", rec, "--classifier", str(tmp_path / "clf"), "--out", str(out)], capsys)
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert code != 0 and len(lines) == 1, err
    assert "manifest.csv:row 10" in lines[0] and "test_1.png" in lines[0]
    assert not out.exists()
    code, _, err = _run(["evaluate", rec, "--classifier", str(tmp_path / "clf"), "--out", str(out),
                         "--set", "data.on_bad_image=skip"], capsys)
    assert code == 0, err
    assert bad_images.count_skipped_images(out) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["skipped_images"] == {"evaluation": 1, "classifier training": 0}
    assert "Images left out as unreadable" in (out / "report.md").read_text()
    bad_images.clear_skipped()
