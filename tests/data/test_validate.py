"""Every validation error planted at once; each must be named once with its file and row."""

import os
from pathlib import Path

import pandas as pd

from medlt.data.validate import validate
from tests.data.builders import CT_SPLITS, NIH, recipe, write_ct_rate, write_nih


def _truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _found(problems):
    return sorted((Path(p.file).name, p.row, p.code) for p in problems)


def test_clean_dataset_has_no_problems(tmp_path):
    write_nih(tmp_path / "nih")
    assert validate(recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "nih")), show_progress=False) == []


def test_every_planted_cxr_fault_is_named_once(tmp_path):
    root = tmp_path / "nih"
    files = write_nih(root)
    train = pd.read_csv(files["train"], dtype=str)
    os.remove(root / train.loc[1, "id"])                      # row 2: missing file
    _truncate(root / train.loc[2, "id"])                      # row 3: truncated PNG
    train.loc[3, "id"] = "../outside.png"                     # row 4: leaves the root
    train.loc[4, "Hernia"] = "2"                              # row 5: not 0/1 (its own class stays 1)
    train.loc[5, list(NIH)] = "0"                             # row 6: no positive
    train.loc[6, ["Edema", "Mass"]] = "1"                     # row 7: several positives
    train.loc[7, "id"] = "/etc/hostname"                      # row 8: absolute path
    train.to_csv(files["train"], index=False)
    test = pd.read_csv(files["test"], dtype=str)
    test.loc[0, "id"] = train.loc[9, "id"]                    # test row 1: duplicate id
    test.loc[1, "subject_id"] = train.loc[10, "subject_id"]   # test row 2: patient also in train
    test.to_csv(files["test"], index=False)
    bt = pd.read_csv(files["balanced-test"], dtype=str)
    bt = bt.drop(columns=["Hernia"])                          # missing class column
    bt["Pneumonitis"] = "0"                                   # unknown class column
    bt.to_csv(files["balanced-test"], index=False)

    problems = validate(recipe(tmp_path, format="nih-cxr-lt", root=str(root)), show_progress=False)
    tr, te, btn = (f"nih-cxr-lt_single-label_{s}.csv" for s in ("train", "test", "balanced-test"))
    assert _found(problems) == sorted([
        (tr, 2, "missing-file"), (tr, 3, "unreadable-image"), (tr, 4, "path-escapes-root"),
        (tr, 5, "bad-label-value"), (tr, 6, "no-positive"), (tr, 7, "several-positives"),
        (tr, 8, "path-escapes-root"), (te, 1, "duplicate-id"), (te, 2, "patient-leak"),
        (btn, None, "missing-class-column"), (btn, None, "unknown-class-column"),
    ])
    msgs = {p.code: str(p) for p in problems}
    assert "Hernia" in msgs["missing-class-column"] and "Pneumonitis" in msgs["unknown-class-column"]
    assert "train-10" in msgs["patient-leak"] and "'test'" in msgs["patient-leak"] and "'train'" in msgs["patient-leak"]
    assert f"{tr}:row 10" in msgs["duplicate-id"]
    assert "value '2'" in msgs["bad-label-value"]
    assert "Edema" in msgs["several-positives"]


def test_every_planted_ct_fault_is_named_once(tmp_path):
    root = tmp_path / "ct"
    write_ct_rate(root, skip_metadata=("train_2_a_1.nii.gz",))
    vol = lambda k: root / "dataset/train" / f"train_{k}" / f"train_{k}_a" / f"train_{k}_a_1.nii.gz"  # noqa: E731
    _truncate(vol(3), keep=0.5)
    os.remove(vol(4))
    problems = validate(recipe(tmp_path, format="ct-rate", root=str(root), splits=CT_SPLITS), show_progress=False)
    lab = "train_predicted_labels.csv"
    assert _found(problems) == [(lab, 2, "ct-no-metadata"), (lab, 3, "unreadable-image"), (lab, 4, "missing-file")]
    assert "validation_metadata" not in str(problems) and "train_metadata.csv" in str(problems[0])


def test_bad_metadata_and_bad_volume_name(tmp_path):
    root = tmp_path / "ct"
    (lab, met) = write_ct_rate(root, counts={"train": 2, "valid": 1})["train"]
    m = pd.read_csv(met, dtype=str)
    m.loc[0, "XYSpacing"] = "[0.75]x"
    m.loc[0, "ZSpacing"] = "-1"
    m.to_csv(met, index=False)
    problems = validate(recipe(tmp_path, format="ct-rate", root=str(root), splits=CT_SPLITS), show_progress=False)
    codes = {(Path(p.file).name, p.row, p.code) for p in problems}
    assert ("train_metadata.csv", 1, "bad-metadata") in codes
    assert ("train_predicted_labels.csv", 1, "ct-no-metadata") in codes


def test_missing_label_csv_for_a_role(tmp_path):
    files = write_nih(tmp_path / "nih")
    files["balanced-val"].unlink()
    problems = validate(recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "nih")), show_progress=False)
    assert [p.code for p in problems] == ["missing-split"]
    assert problems[0].file == str(files["balanced-val"]) and "label CSV not found" in problems[0].message
    assert "data.splits.val = 'balanced-val'" in problems[0].message


def test_missing_class_column_is_reported_once_not_per_row(tmp_path):
    files = write_nih(tmp_path / "nih")
    df = pd.read_csv(files["train"], dtype=str).drop(columns=["No Finding"])  # rows 1, 21 had it
    df.to_csv(files["train"], index=False)
    problems = validate(recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "nih")), show_progress=False)
    assert [(p.row, p.code) for p in problems] == [(None, "missing-class-column")]


def test_manifest_misspelt_class_column_is_named(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    from medlt.data.io import write_png
    from tests.data.builders import upright_image

    rows = []
    for i, split in enumerate(["train", "val", "test"]):
        write_png(root / f"{i}.png", upright_image())
        rows.append({"image": f"{i}.png", "patient_id": f"p{i}", "split": split, "Atelectasis": 1,
                     "Cardiomegally": 0, "seed": i})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    r = recipe(tmp_path, format="manifest", root=str(root), classes=["Atelectasis", "Cardiomegaly"],
               splits={"train": "train", "val": "val", "test": "test", "test_longtail": None})
    problems = validate(r, show_progress=False)
    assert sorted(p.code for p in problems) == ["missing-class-column", "unknown-class-column"]
    assert any("'Cardiomegally'" in p.message and "Cardiomegaly" in p.message for p in problems)


def test_missing_root_is_one_problem_not_one_per_row(tmp_path):
    labels = tmp_path / "nih"
    write_nih(labels)
    r = recipe(tmp_path, format="nih-cxr-lt", root=str(tmp_path / "no-such-folder"), labels=str(labels))
    problems = validate(r, show_progress=False)
    assert [p.code for p in problems] == ["missing-root"]
