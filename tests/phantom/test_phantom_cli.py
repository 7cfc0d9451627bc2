"""`medlt phantom` through the real CLI entry point."""

import pandas as pd
import pytest

from medlt.cli import main


def test_phantom_cli_writes_and_summarises(tmp_path, capsys):
    out = tmp_path / "ct"
    with pytest.raises(SystemExit) as e:
        main(["phantom", "--layout", "ct-rate", "--out", str(out), "--num-images", "10",
              "--image-size", "16", "--imbalance-ratio", "20", "--seed", "1"])
    assert e.value.code == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"data.root={out}" in line and f"data.labels={out}" in line
    df = pd.read_csv(out / "multi_abnormality_labels" / "train_predicted_labels.csv")
    assert line.startswith("ct-rate phantom:") and f"train {len(df)}" in line
    scans = df.assign(scan=df["VolumeName"].str.rsplit("_", n=1).str[0]).drop_duplicates("scan")
    counts = scans.iloc[:, 1:19].sum()
    assert counts.iloc[0] == 5 and counts.iloc[-1] == 1  # n_max = 10 / 2, r = 1/20 -> 0.25 -> 1


def test_phantom_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["phantom", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--layout", "--out", "--num-images", "--image-size", "--imbalance-ratio", "--seed",
                "--multi-label"):
        assert opt in text


def test_phantom_cli_error_is_one_line(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("data")
    with pytest.raises(SystemExit) as e:
        main(["phantom", "--layout", "ct-rate", "--out", str(tmp_path)])
    assert e.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and "Traceback" not in err[0]
