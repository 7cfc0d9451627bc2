"""Report writing and comparison from result dicts built with the real metric functions."""

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from medlt.metrics import ClassDiversity, ClassFeatureStats, MemorizationAccumulator, single_label_report
from medlt.report.compare import compare_markdown
from medlt.report.document import fmt, to_html, to_markdown
from medlt.report.write import json_safe, write_report

NAMES = ["No Finding", "Effusion", "Hernia"]
GROUPS = ["head", "medium", "tail"]


def make_result(seed=0, train_source="real", with_generation=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 60)
    pred = np.where(rng.random(60) < 0.7, y, rng.integers(0, 3, 60))
    res = {
        "created_utc": "2026-01-01T00:00:00+00:00", "recipe_name": "unit", "recipe_sha256": "ab" * 32,
        "recipe": {"name": "unit"},
        "classifier": {"checkpoint": "/x/best.pt", "checkpoint_sha256": "cd" * 32, "architecture": "resnet18",
                       "method": "erm", "train_manifest": "", "train_source": train_source,
                       "train_class_counts": [1500, 300, 12]},
        "label_space": {"names": NAMES, "multi_label": False}, "train_class_counts": [1500, 300, 12],
        "groups": GROUPS, "group_thresholds": [100, 1000],
        "classification": {"test": {"split": "balanced-test", **single_label_report(y, pred, 3, GROUPS)},
                           "test_longtail": {"skipped": "data.splits.test_longtail is null"}},
    }
    if with_generation:
        g = torch.Generator().manual_seed(seed)
        real, ry = torch.randn(90, 8, generator=g), torch.randint(0, 3, (90,), generator=g)
        syn, sy = torch.randn(45, 8, generator=g) + 0.3, torch.randint(0, 3, (45,), generator=g)
        ry[:2] = 2  # class Hernia: at most a few real images -> "too few real images"
        ry[2:] = torch.where(ry[2:] == 2, 0, ry[2:])
        st = ClassFeatureStats(NAMES, GROUPS, extractor_name="unit-extractor", min_real_per_class=5,
                               min_synthetic_per_class=5)
        st.update("real", real, ry)
        st.update("synthetic", syn, sy)
        mem = MemorizationAccumulator(real, [f"r{i}" for i in range(90)], NAMES, GROUPS, top_k=2)
        mem.update(syn, sy, [f"s{i}" for i in range(45)])
        div = ClassDiversity(NAMES, max_pairs=5)
        div.update(torch.rand(45, 1, 32, 32, generator=g) * 2 - 1, sy)
        res["generation"] = {
            "synthetic_dir": "/syn", "n_synthetic": 45, "n_real_train": 90, "feature_extractor": "unit-extractor",
            "feature_extractors": [{"name": "unit-extractor", "source": "/x/e.pt", "sha256": "ef" * 32, "default": True}],
            "by_extractor": {"unit-extractor": {
                "feature_extractor": "unit-extractor", "source": "/x/e.pt", "sha256": "ef" * 32,
                "fid_kid": st.compute(kid_subset_size=10, bootstrap_replicates=5),
                "memorization": {"feature_extractor": "unit-extractor", **mem.compute()}}},
            "diversity": div.compute()}
    return res


def test_json_safe_and_fmt():
    assert json_safe({"a": float("nan"), "b": (1, float("inf")), "c": np.float32(0.5)}) == \
        {"a": None, "b": [1, None], "c": 0.5}
    assert fmt(None) == "–" and fmt(float("nan")) == "n/a" and fmt(0.123456) == "0.1235" and fmt(True) == "yes"


def test_document_renders_tables_code_and_images():
    blocks = [("h", 1, "T <x>"), ("p", "see `code` & more"), ("table", ["a", "b"], [["r", 1.5]]),
              ("img", "f.png", b"\x89PNG fake", "cap")]
    md = to_markdown(blocks)
    assert "# T <x>" in md and "| r | 1.5 |" in md and "![cap](figures/f.png)" in md
    html = to_html(blocks, "t")
    assert "T &lt;x&gt;" in html and "<code>code</code> &amp; more" in html
    assert "data:image/png;base64," in html


def test_write_report_files_and_numbers(tmp_path):
    res = make_result()
    paths = write_report(tmp_path, res, {})
    back = json.loads(paths["json"].read_text())  # strict JSON (no NaN)
    assert back["classification"]["test"]["balanced_accuracy"] == pytest.approx(
        res["classification"]["test"]["balanced_accuracy"])
    assert back["classifier"]["checkpoint_sha256"] == "cd" * 32 and back["recipe_sha256"] == "ab" * 32
    md = paths["md"].read_text()
    bacc = res["classification"]["test"]["balanced_accuracy"]
    assert f"| test (balanced-test) | 60 | {fmt(bacc)} |" in md
    assert "Role test_longtail skipped" in md and "unit-extractor" in md
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (tmp_path / link).stat().st_size > 0
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == len(re.findall(r"\]\(figures/", md))
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_generation_sections_show_counts_markers_scopes_and_memorization(tmp_path):
    res = make_result()
    fk = res["generation"]["by_extractor"]["unit-extractor"]["fid_kid"]
    assert fk["per_class"]["Hernia"]["status"] == "too_few_real_images"
    paths = write_report(tmp_path, res, {})
    md = paths["md"].read_text()
    assert "too few real images (< 5; excluded from every mean)" in md
    assert "FID 95% CI" in md and "classes entered" in md and "Pooled (not class-matched)" in md
    ov = json.loads(paths["json"].read_text())["generation"]["by_extractor"]["unit-extractor"]["fid_kid"]["scopes"]
    assert ov["overall"]["classes"] == ["No Finding", "Effusion"]
    row = next(line for line in md.splitlines() if line.startswith("| overall |"))
    assert "No Finding, Effusion" in row and "Hernia (too few real images)" in row and fmt(ov["overall"]["fid"]) in row
    eff = fk["per_class"]["Effusion"]
    assert f"| Effusion | medium | {eff['n_real']} | {eff['n_synthetic']} of {eff['n_synthetic_available']} |" in md
    assert "Memorization (unit-extractor)" in md and "| head |" in md and "smallest ratio" in md
    assert "sha256 `efefefefefefefef…`" in md
    assert "Gaussian window 11 px" in md and "2 scale(s)" in md  # 32-px images


def test_empty_plots_are_notes_not_blank_axes(tmp_path):
    res = make_result()
    fk = res["generation"]["by_extractor"]["unit-extractor"]["fid_kid"]
    for row in fk["per_class"].values():
        row.update(fid=None, kid_mean=None, fid_ci95=None, status="too_few_real_images")
    md = write_report(tmp_path, res, {})["md"].read_text()
    assert "No plot of per-class FID" in md and "No plot of per-class KID" in md
    assert "fid_per_class_e0.png" not in md and not (tmp_path / "figures" / "fid_per_class_e0.png").exists()


def test_compare_two_runs(tmp_path):
    write_report(tmp_path / "real", make_result(0, "real", with_generation=False), {})
    write_report(tmp_path / "synth", make_result(1, "real+synthetic", with_generation=False), {})
    md = compare_markdown([tmp_path / "real", tmp_path / "synth"])
    rows = [line for line in md.splitlines() if line.startswith("| real |") or line.startswith("| synth |")]
    assert len(rows) == 2 and "real+synthetic" in rows[1]
    b0 = json.loads((tmp_path / "real" / "report.json").read_text())["classification"]["test"]["balanced_accuracy"]
    assert fmt(b0) in rows[0]


def test_compare_refuses_different_label_spaces(tmp_path):
    from medlt.errors import DataError

    write_report(tmp_path / "a", make_result(with_generation=False), {})
    other = make_result(with_generation=False)
    other["label_space"] = {"names": ["x", "y", "z"], "multi_label": False}
    write_report(tmp_path / "b", other, {})
    with pytest.raises(DataError, match="classes differ"):
        compare_markdown([tmp_path / "a", tmp_path / "b"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_report_html_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    paths = write_report(tmp_path, make_result(), {})
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,2400", f"--screenshot={shot}", paths["html"].as_uri()],
                   check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2400, 1200)
    assert img.std() > 10  # not a blank page: text, tables and plots rendered
    assert (img < 100).mean() > 0.005 and math.isfinite(img.mean())
