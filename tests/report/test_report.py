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
        st = ClassFeatureStats(NAMES, GROUPS, extractor_name="unit-extractor")
        st.update("real", real, ry)
        st.update("synthetic", syn, sy)
        mem = MemorizationAccumulator(real, [f"r{i}" for i in range(90)], NAMES, top_k=2)
        mem.update(syn, sy, [f"s{i}" for i in range(45)])
        div = ClassDiversity(NAMES, max_pairs=5)
        div.update(torch.rand(45, 1, 32, 32, generator=g) * 2 - 1, sy)
        res["generation"] = {"synthetic_dir": "/syn", "n_synthetic": 45, "n_real_train": 90,
                             "feature_extractor": "unit-extractor", "fid_kid": st.compute(kid_subset_size=10),
                             "diversity": div.compute(), "memorization": mem.compute()}
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
