"""Wording of data messages: validate names the kind of images by format; preview needs only its
own split; the "set it to null" hint is accepted by the schema (val/test) and not offered for train."""

import pytest

from medlt.cli import main
from tests.data.test_bad_images import recipe_file, write_manifest_data


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_validate_says_2d_images_for_a_generic_manifest(tmp_path, capsys):
    write_manifest_data(tmp_path / "d")
    code, out, err = _run(["data", "validate", recipe_file(tmp_path, tmp_path / "d")], capsys)
    assert code == 0, err
    assert out.startswith("ok: 10 2D images, 2 classes (single-label)") and "CXR" not in out


def test_preview_needs_only_its_split_and_null_hint_is_true(tmp_path, capsys):
    write_manifest_data(tmp_path / "d", n_val=0)  # no val rows at all
    rec = recipe_file(tmp_path, tmp_path / "d")
    out = tmp_path / "p"
    code, stdout, err = _run(["data", "preview", rec, "--out", str(out), "--split", "train"], capsys)
    assert code == 0, err
    assert "wrote 6 previews" in stdout and (out / "contact_sheet.png").is_file()
    code, _, err = _run(["data", "validate", rec], capsys)
    assert code != 0 and "data.splits.val = 'val'" in err and "or set it to null" in err
    code, stdout, err = _run(["data", "validate", rec, "--set", "data.splits.val=null"], capsys)
    assert code == 0, err
    # the previewed split itself must exist
    code, _, err = _run(["data", "preview", rec, "--out", str(out), "--split", "val"], capsys)
    assert code != 0 and "val" in err and len(err.strip().splitlines()) <= 2


def test_missing_train_split_hint_does_not_offer_null(tmp_path, capsys):
    write_manifest_data(tmp_path / "d")
    rec = recipe_file(tmp_path, tmp_path / "d")
    code, _, err = _run(["data", "validate", rec, "--set", "data.splits.train=training"], capsys)
    assert code != 0 and "data.splits.train = 'training'" in err
    assert "set data.splits.train to the split holding the training rows" in err and "null" not in err
