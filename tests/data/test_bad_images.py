"""Bad images (truncated PNG, 4D / flat NIfTI, empty DICOM, corrupt pixel data) met by the verbs
that read images: one error line naming the file and its label-CSV row, a non-zero exit and no run
folder; `data validate` lists them; data.on_bad_image=skip leaves them out and lists them in the
run folder (medlt.data.bad_images)."""

import zlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medlt.cli import main
from medlt.data import bad_images
from medlt.data.io import write_png
from medlt.data.io.probe import decode_problem, probe_image
from tests.data.builders import CT_SPLITS, upright_image, write_ct_rate

CLASSES = ["A", "B"]


@pytest.fixture(autouse=True)
def _fresh_skip_record():
    bad_images.clear_skipped()
    yield
    bad_images.clear_skipped()


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def _errors(err: str) -> list[str]:
    return [ln for ln in err.strip().splitlines() if ln.strip()]


def write_manifest_data(root, n_train=6, n_val=2, n_test=2):
    """PNG manifest dataset, classes A/B alternating, one patient per image."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for k in range(n):
            rel = f"img/{split}_{k}.png"
            write_png(root / rel, upright_image(32, 32, seed=k))
            rows.append({"image": rel, "patient_id": f"{split}-{k}", "split": split,
                         "A": int(k % 2 == 0), "B": int(k % 2 == 1)})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def recipe_file(tmp_path, root, extra=""):
    p = tmp_path / "r.yaml"
    p.write_text(f"name: t\nseed: 0\ndata:\n  format: manifest\n  root: {root}\n  classes: [A, B]\n"
                 f"  image_size: [32, 32]\n  group_thresholds: [1, 2]\n"
                 f"  splits: {{train: train, val: val, test: test, test_longtail: null}}\n{extra}")
    return str(p)


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def corrupt_idat(path):
    """A PNG whose header, IEND and chunk CRCs are intact but whose zlib stream is garbage: the
    cheap probe passes it, only a decode fails."""
    data = bytearray(path.read_bytes())
    i = data.index(b"IDAT")
    n = int.from_bytes(data[i - 4:i], "big")
    data[i + 4:i + 4 + n] = bytes((b ^ 0x5A) for b in data[i + 4:i + 4 + n])
    data[i + 4 + n:i + 8 + n] = zlib.crc32(bytes(data[i:i + 4 + n])).to_bytes(4, "big")
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------ probes
def test_probe_and_decode_verdicts(tmp_path):
    good = write_png(tmp_path / "good.png", upright_image(16, 16))
    assert probe_image(good, "cxr") is None and decode_problem(good, "cxr") is None
    cut = write_png(tmp_path / "cut.png", upright_image(64, 64))
    truncate(cut)
    kind, why = probe_image(cut, "cxr")
    assert kind == "suspect" and "IEND" in why
    assert decode_problem(cut, "cxr") is not None
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert probe_image(empty, "cxr") == ("bad", "file is empty (0 bytes)")
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 1), np.int16), np.eye(4)), str(flat))
    kind, why = probe_image(flat, "ct")
    assert kind == "bad" and "dimension of size 1" in why
    series = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 6, 3), np.int16), np.eye(4)), str(series))
    assert "not a single 3D volume" in probe_image(series, "ct")[1]
    assert "not a single 3D volume" in decode_problem(series, "ct")
    one_frame = tmp_path / "t1.nii.gz"  # (X, Y, Z, 1) is one volume
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 6, 1), np.int16), np.eye(4)), str(one_frame))
    assert probe_image(one_frame, "ct") is None and decode_problem(one_frame, "ct") is None
    gz = tmp_path / "cut.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).integers(0, 999, (16, 16, 16)).astype(np.int16),
                             np.eye(4)), str(gz))
    truncate(gz, 0.6)
    assert probe_image(gz, "ct")[0] == "suspect" and decode_problem(gz, "ct") is not None
    bad_idat = write_png(tmp_path / "idat.png", upright_image(32, 32))
    corrupt_idat(bad_idat)
    assert probe_image(bad_idat, "cxr") is None and decode_problem(bad_idat, "cxr") is not None


# -------------------------------------------------------------------------- preview / validate
def test_truncated_png_preview_is_one_line_naming_file_and_row(tmp_path, capsys):
    root = tmp_path / "d"
    write_manifest_data(root)
    truncate(root / "img" / "train_2.png")
    rec = recipe_file(tmp_path, root)
    out = tmp_path / "prev"
    code, _, err = _run(["data", "preview", rec, "--out", str(out)], capsys)
    lines = _errors(err)
    assert code != 0 and len(lines) == 1, err
    assert "manifest.csv:row 3" in lines[0] and "train_2.png" in lines[0] and "Traceback" not in err
    assert not out.exists()  # detected before anything was written

    code, _, err = _run(["data", "validate", rec], capsys)
    assert code != 0 and "manifest.csv:row 3: [unreadable-image]" in err and "train_2.png" in err


def test_skip_mode_leaves_bad_images_out_and_lists_them(tmp_path, capsys):
    root = tmp_path / "d"
    write_manifest_data(root)
    truncate(root / "img" / "train_2.png")
    corrupt_idat(root / "img" / "train_4.png")  # only a full decode finds this one
    rec = recipe_file(tmp_path, root, "  on_bad_image: skip\n")
    out = tmp_path / "prev"
    code, stdout, err = _run(["data", "preview", rec, "--out", str(out)], capsys)
    assert code == 0, err
    assert "wrote 4 previews" in stdout and "skipped_images.csv" in stdout
    assert sorted(p.name for p in out.glob("img_train_*.png")) == [
        "img_train_0.png", "img_train_1.png", "img_train_3.png", "img_train_5.png"]
    listed = pd.read_csv(out / "skipped_images.csv")
    assert list(listed["csv_row"]) == [3, 5] and list(listed["split"]) == ["train", "train"]
    assert listed["image"].str.endswith(("train_2.png", "train_4.png")).all()
    assert bad_images.count_skipped_images(out) == 2
    assert bad_images.count_skipped_images(tmp_path) == 0


def test_bad_item_mid_run_names_file_and_row(tmp_path):
    """An image that passes the cheap check but fails to decode while the loader reads it."""
    from monai.data import DataLoader

    from medlt.data.loaders import build_dataset
    from medlt.recipe import load_recipe

    root = tmp_path / "d"
    write_manifest_data(root)
    corrupt_idat(root / "img" / "train_1.png")
    rec = load_recipe(recipe_file(tmp_path, root))
    ds = build_dataset(rec, "train")  # error mode: headers only, so it is built
    assert len(ds) == 6
    with pytest.raises(bad_images.BadImageError) as e:
        ds[1]
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "manifest.csv:row 2: 'img/train_1.png'" in msg and "applying" not in msg
    for workers in (0, 1):  # in a worker process torch re-raises it: still the one line
        with pytest.raises(bad_images.BadImageError) as e:
            list(DataLoader(ds, batch_size=2, num_workers=workers))
        assert str(e.value) == msg


def test_cache_memory_fill_names_the_file(tmp_path):
    from medlt.data.loaders import build_dataset
    from medlt.recipe import load_recipe

    root = tmp_path / "d"
    write_manifest_data(root)
    corrupt_idat(root / "img" / "train_3.png")
    rec = load_recipe(recipe_file(tmp_path, root, "  cache_memory: true\n"))
    with pytest.raises(bad_images.BadImageError, match=r"manifest.csv:row 4: .*train_3.png"):
        build_dataset(rec, "train")


def test_ct_4d_and_flat_volumes_validate_and_preview(tmp_path, capsys):
    root = tmp_path / "ct"
    write_ct_rate(root, {"train": 3, "valid": 2})
    v4 = root / "dataset/train/train_2/train_2_a/train_2_a_1.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 16, 10, 2), np.int16), np.eye(4)), str(v4))
    flat = root / "dataset/valid/valid_1/valid_1_a/valid_1_a_1.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 16, 1), np.int16), np.eye(4)), str(flat))
    splits = ", ".join(f"{k}: {'null' if v is None else v}" for k, v in CT_SPLITS.items())
    rec = tmp_path / "ct.yaml"
    rec.write_text(f"name: t\ndata:\n  format: ct-rate\n  root: {root}\n  image_size: [8, 8, 8]\n"
                   f"  ct: {{crop_size: null}}\n  splits: {{{splits}}}\n")
    code, _, err = _run(["data", "validate", str(rec)], capsys)
    assert code != 0
    assert "train_predicted_labels.csv:row 2: [unreadable-image]" in err and "not a single 3D volume" in err
    assert "valid_predicted_labels.csv:row 1: [unreadable-image]" in err and "dimension of size 1" in err
    out = tmp_path / "prev"
    code, _, err = _run(["data", "preview", str(rec), "--out", str(out)], capsys)
    lines = _errors(err)
    assert code != 0 and len(lines) == 1 and "train_2_a_1.nii.gz" in lines[0] and "row 2" in lines[0]
    assert not out.exists()


def test_zero_byte_dicom_is_one_plain_line(tmp_path, capsys):
    from medlt.data.io import read_cxr
    from medlt.errors import DataError

    p = tmp_path / "x.dcm"
    p.write_bytes(b"")
    with pytest.raises(DataError) as e:
        read_cxr(p)
    assert str(e.value) == f"{p}: file is empty (0 bytes), not a DICOM file"
    p.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(DataError) as e:
        read_cxr(p)
    assert "not a DICOM file" in str(e.value) and "force" not in str(e.value)


# ------------------------------------------------------------------------------- train / classify
def test_train_and_classify_stop_before_the_run_folder(tmp_path, capsys):
    root = tmp_path / "d"
    write_manifest_data(root)
    truncate(root / "img" / "train_5.png")
    rec = recipe_file(tmp_path, root)
    for verb in ("train", "classify"):
        out = tmp_path / f"run-{verb}"
        code, _, err = _run([verb, rec, "--out", str(out)], capsys)
        lines = _errors(err)
        assert code != 0 and len(lines) == 1, (verb, err)
        assert "manifest.csv:row 6" in lines[0] and "train_5.png" in lines[0]
        assert not out.exists(), verb


def test_skip_mode_training_counts_exclude_skipped_images(tmp_path):
    """Diffusion training data in skip mode: the class counts are those of the images kept, and
    the run folder gets the list."""
    from medlt.diffusion.data import from_recipe
    from medlt.recipe import load_recipe

    root = tmp_path / "d"
    write_manifest_data(root)  # train: A at rows 1, 3, 5; B at rows 2, 4, 6
    truncate(root / "img" / "train_0.png")
    truncate(root / "img" / "train_2.png")
    rec = load_recipe(recipe_file(tmp_path, root, "  on_bad_image: skip\n"))
    data = from_recipe(rec)
    assert data.class_counts == [1, 3]
    assert [b.csv_row for b in bad_images.skipped_images()] == [1, 3]
    run = tmp_path / "run"
    assert bad_images.write_skipped_images(run) == run / "skipped_images.csv"
    assert bad_images.count_skipped_images(run) == 2
