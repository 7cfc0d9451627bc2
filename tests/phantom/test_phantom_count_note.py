"""`medlt phantom -n N` says why the training split does not hold exactly N images."""

import pandas as pd
import pytest

from medlt.cli import main
from medlt.phantom import write_phantom
from medlt.phantom.plan import train_counts


def _train_rows(out) -> int:
    return len(pd.read_csv(out / "nih-cxr-lt_single-label_train.csv"))


def test_cli_explains_a_train_split_larger_than_asked(tmp_path, capsys):
    assert sum(train_counts(120, 20, 0.01)) == 123  # rounding + at least 1 per class
    out = tmp_path / "p"
    with pytest.raises(SystemExit) as e:
        main(["phantom", "--layout", "nih-cxr-lt", "--out", str(out), "-n", "120", "-s", "16"])
    assert e.value.code == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert _train_rows(out) == 123
    assert "train has 123 images, not 120" in line and "at least 1 image" in line


def test_no_note_when_the_count_is_exact(tmp_path):
    n = next(n for n in range(100, 200) if sum(train_counts(n, 20, 0.01)) == n)
    summary = write_phantom("nih-cxr-lt", tmp_path / "p", num_images=n, image_size=16)
    assert _train_rows(tmp_path / "p") == n
    assert summary.count_note() == "" and "train has" not in summary.line()


def test_ct_note_counts_scans_and_volumes(tmp_path):
    summary = write_phantom("ct-rate", tmp_path / "ct", num_images=10, image_size=16)
    volumes = summary.images_per_split["train"]
    assert volumes > 10  # some scans have a second reconstruction
    assert "--num-images 10 counts training scans" in summary.line()
    assert f"train has {volumes} volumes" in summary.line()
