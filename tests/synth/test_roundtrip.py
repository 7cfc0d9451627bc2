"""Every written file reads back through medlt's readers to the generated tensor, within the format's
quantization; DICOM outputs carry the synthetic markings and no identifier from real files."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch

from medlt.data.io import read_cxr
from medlt.data.labels import LabelSpace
from medlt.synth.generate import run_synth
from tests.synth.fakes import FakeGenerator, make_recipe, make_table, one_hot_rows


def _expected(gen, row, names, multi_label):
    vec = [int(row[n]) for n in names]
    lab = torch.tensor([vec], dtype=torch.float32) if multi_label else torch.tensor([int(np.argmax(vec))])
    return gen.generate(lab, [int(row["seed"])], guidance_scale=0.0, num_inference_steps=1)[0].numpy()


def test_png_roundtrip(tmp_path):
    ls = LabelSpace.official("nih-cxr-lt")
    rec = make_recipe(tmp_path / "real")
    tab = make_table(tmp_path / "real", ls, one_hot_rows([3, 1] + [2] * 18))
    gen = FakeGenerator(ls, image_shape=(1, 16, 12))
    run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_head", batch_size=4)
    man = pd.read_csv(tmp_path / "out/manifest.csv", dtype=str)
    assert len(man) == 2 + 18 and man["image"].str.endswith(".png").all()
    for _, row in man.iterrows():
        x = _expected(gen, row, ls.names, False)
        back = read_cxr(tmp_path / "out" / row["image"])
        assert back.shape == (16, 12)  # rows = H, columns = W: no transpose
        assert np.abs(back - (x[0] + 1) / 2).max() <= 0.5 / 255 + 1e-6


def test_dicom_roundtrip_markings_and_no_real_identifier(tmp_path):
    ls = LabelSpace.official("mimic-cxr-lt")
    rec = make_recipe(tmp_path / "real", "mimic-cxr-lt")
    tab = make_table(tmp_path / "real", ls, one_hot_rows([3, 1] + [2] * 17), fmt="mimic-cxr-lt")
    real_files = [Path(p) for p in tab.frame["image"]]
    planted = set()
    for p in real_files:  # everything identifying in the real files
        ds = pydicom.dcmread(p)
        for kw in ("PatientID", "PatientName", "AccessionNumber", "StudyID", "InstitutionName",
                   "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            planted.add(str(ds.get(kw, "")))
    planted.discard("")
    assert any(v.startswith("PLANTEDPID") for v in planted)
    gen = FakeGenerator(ls, image_shape=(1, 16, 16))
    run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_head", batch_size=4)
    man = pd.read_csv(tmp_path / "out/manifest.csv", dtype=str)
    assert len(man) == 2 + 17
    real_subjects = {p.parts[-3] for p in real_files}
    for _, row in man.iterrows():
        path = tmp_path / "out" / row["image"]
        parts = Path(row["image"]).parts  # files/pXX/pSUBJECT/sSTUDY/<id>.dcm
        assert parts[0] == "files" and parts[2].startswith("p9") and parts[3].startswith("s9")
        assert parts[1] == parts[2][:3] and parts[2] not in real_subjects
        ds = pydicom.dcmread(path)
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert "SYNTHETIC" in ds.SeriesDescription.upper()
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.Rows, ds.Columns) == (16, 16)
        assert ds.BitsAllocated == 16 and ds.BitsStored == 12
        assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0
        raw = path.read_bytes()
        for value in planted:
            assert value.encode() not in raw, f"real identifier {value!r} found in {path}"
        x = _expected(gen, row, ls.names, False)
        assert np.abs(read_cxr(path) - (x[0] + 1) / 2).max() <= 0.5 / 4095 + 1e-6
    uids = [pydicom.dcmread(tmp_path / "out" / p).SOPInstanceUID for p in man["image"]]
    assert len(set(uids)) == len(uids)


def test_jpg_output_when_the_recipe_says_so(tmp_path):
    ls = LabelSpace.official("mimic-cxr-lt")
    rec = make_recipe(tmp_path / "real", "mimic-cxr-lt", synth={"output_format": "jpg"})
    tab = make_table(tmp_path / "real", ls, one_hot_rows([2, 1] + [2] * 17), write_images=False)
    gen = FakeGenerator(ls, image_shape=(1, 16, 16))
    from medlt.synth.writers import resolve_layout

    layout = resolve_layout("mimic-cxr-lt", rec.synth.output_format)
    assert layout.ext == "jpg"
    from medlt.synth.generate import make_plan

    job = make_plan(rec, tab).jobs[0]
    x = gen.generate(torch.tensor([job.driver]), [job.seed], guidance_scale=0, num_inference_steps=1)[0].numpy()
    path = tmp_path / "out" / layout.relpath(job)
    layout.write(path, x, job)
    assert path.suffix == ".jpg" and np.abs(read_cxr(path) - (x[0] + 1) / 2).mean() < 0.05


def test_nifti_roundtrip_spacing_hu_and_ct_metadata(tmp_path):
    from medlt.data.io import LoadCTd

    ls = LabelSpace.official("ct-rate")
    rng = np.random.default_rng(0)
    y = (rng.random((10, 18)) < 0.3).astype(np.int64)
    y[:, 0] = 1  # head class
    rec = make_recipe(tmp_path / "real", "ct-rate")
    tab = make_table(tmp_path / "real", ls, y, fmt="ct-rate")
    gen = FakeGenerator(ls, image_shape=(1, 8, 8, 4))
    run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_ratio:0.5", batch_size=4)
    out = tmp_path / "out"
    man = pd.read_csv(out / "manifest.csv", dtype=str)
    assert len(man) > 0 and man["image"].str.endswith(".nii.gz").all()
    meta = pd.read_csv(out / "metadata/synthetic_metadata.csv")
    assert list(meta["VolumeName"]) == [Path(p).name for p in man["image"]]
    assert set(meta["XYSpacing"]) == {"[2, 2]"} and set(meta["ZSpacing"]) == {3.0}
    import nibabel as nib

    loader = LoadCTd(keys=("image",))
    for _, row in man.iterrows():
        img = nib.load(out / row["image"])
        assert b"SYNTHETIC" in bytes(img.header["descrip"])
        assert np.allclose(img.header.get_zooms(), (2.0, 2.0, 3.0))
        d = loader({"image": str(out / row["image"]), **{k: float(row[k]) for k in (
            "spacing_x", "spacing_y", "spacing_z", "rescale_slope", "rescale_intercept")}})
        hu = np.asarray(d["image"])[0]
        x = _expected(gen, row, ls.names, True)[0]
        assert hu.shape == x.shape
        assert np.abs(hu - x * 1000).max() <= 0.5 + 1e-3
    # multi-label plan: every class reaches its target, no class over-shoots
    plan = json.loads((out / "plan.json").read_text())
    assert all(c["after"] == max(c["target"], c["real"]) for c in plan["classes"])
    # the merged manifest reads as a CT table with the synthetic spacing
    from medlt.data.table import load_table
    from medlt.recipe import load_recipe

    merged = load_table(load_recipe(out / "merged.recipe.yaml"))
    syn = merged.frame[merged.frame["source"] == "synthetic"]
    assert len(syn) == len(man) and set(syn["spacing_z"]) == {3.0}
    assert merged.class_counts("train") == [c["after"] for c in plan["classes"]]


@pytest.mark.parametrize("fmt,out_fmt", [("nih-cxr-lt", "nii.gz"), ("ct-rate", "png")])
def test_output_format_must_fit_dataset(tmp_path, fmt, out_fmt):
    from medlt.errors import RecipeError
    from medlt.synth.writers import resolve_layout

    with pytest.raises(RecipeError, match="output_format"):
        resolve_layout(fmt, out_fmt, spacing_mm=(1, 1, 1))


def test_dicom_shards_are_byte_identical(tmp_path):
    """DICOM UIDs derive from each image's noise seed, so the files are byte-identical however the
    work is split, while every file still has its own fresh UIDs."""
    ls = LabelSpace.official("mimic-cxr-lt")
    rec = make_recipe(tmp_path / "real", "mimic-cxr-lt")
    tab = make_table(tmp_path / "real", ls, one_hot_rows([3, 1] + [2] * 17), fmt="mimic-cxr-lt")
    gen = FakeGenerator(ls, image_shape=(1, 16, 16))
    kw = dict(generator=gen, table=tab, quota="to_head", batch_size=4)
    run_synth(rec, tmp_path / "one", **kw)
    run_synth(rec, tmp_path / "two", rank=1, world_size=2, **kw)
    run_synth(rec, tmp_path / "two", rank=0, world_size=2, **kw)
    one = sorted((tmp_path / "one").rglob("*.dcm"))
    assert len(one) == 19
    for p in one:
        q = tmp_path / "two" / p.relative_to(tmp_path / "one")
        assert p.read_bytes() == q.read_bytes()
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in one}
    studies = {pydicom.dcmread(p).StudyInstanceUID for p in one}
    assert len(uids) == len(studies) == 19


def _dciodvfy_errors(path: Path) -> list[str] | None:
    """dciodvfy's (Debian package dicom3tools) error lines for a file; None when it is not installed."""
    import shutil
    import subprocess

    exe = shutil.which("dciodvfy")
    if exe is None:
        return None
    res = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]


def test_dicom_spacing_follows_the_source_field_of_view(tmp_path):
    """The real DICOMs are 8 x 8 over the 430 mm default field (ImagerPixelSpacing 53.75 mm); a
    16 x 24 synthetic image of that field has 26.875 x 17.917 mm pixels; PNG sources give none."""
    from pydicom import config

    ls = LabelSpace.official("mimic-cxr-lt")
    rec = make_recipe(tmp_path / "real", "mimic-cxr-lt")
    tab = make_table(tmp_path / "real", ls, one_hot_rows([2, 1] + [2] * 17), fmt="mimic-cxr-lt")
    src = pydicom.dcmread(tab.frame["image"].iloc[0])
    assert [float(v) for v in src.ImagerPixelSpacing] == [53.75, 53.75] and src.Rows == 8
    gen = FakeGenerator(ls, image_shape=(1, 16, 24))
    run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_head", batch_size=4)
    man = pd.read_csv(tmp_path / "out/manifest.csv", dtype=str)
    path = tmp_path / "out" / man["image"].iloc[0]
    old = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE  # every value valid for its VR
    try:
        ds = pydicom.dcmread(path)
        ds.ImagerPixelSpacing, ds.Rows  # noqa: B018  (parse the values under RAISE)
    finally:
        config.settings.reading_validation_mode = old
    assert (ds.Rows, ds.Columns) == (16, 24)
    assert np.allclose([float(v) for v in ds.ImagerPixelSpacing], [430 / 16, 430 / 24], atol=1e-5)
    assert "PixelSpacing" not in ds and "FrameOfReferenceUID" not in ds
    errors = _dciodvfy_errors(path)
    assert errors in (None, []), errors

    # PNG sources written as DICOM: the spacing is unknown, so the file claims none
    ls = LabelSpace.official("nih-cxr-lt")
    rec = make_recipe(tmp_path / "nih", synth={"output_format": "dcm"})
    tab = make_table(tmp_path / "nih", ls, one_hot_rows([2, 1] + [2] * 18))
    run_synth(rec, tmp_path / "out2", generator=FakeGenerator(ls, image_shape=(1, 16, 16)), table=tab,
              quota="to_head", batch_size=4)
    first = sorted((tmp_path / "out2").rglob("*.dcm"))[0]
    ds = pydicom.dcmread(first)
    assert "ImagerPixelSpacing" not in ds and "PixelSpacing" not in ds
    assert _dciodvfy_errors(first) in (None, [])


def test_phantom_scanner_dicom_spacing_follows_its_size(tmp_path):
    from medlt.data.io import write_dicom
    from medlt.data.io.dicom import DX_DEFAULT_FIELD_MM, dicom_field_of_view

    for rows, cols in ((32, 32), (64, 48)):
        p = write_dicom(tmp_path / f"{rows}.dcm", np.zeros((rows, cols)), synthetic=False)
        key, (h_mm, w_mm) = dicom_field_of_view(p)
        assert key == "ImagerPixelSpacing" and max(h_mm, w_mm) == pytest.approx(DX_DEFAULT_FIELD_MM)
