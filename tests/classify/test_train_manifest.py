"""`medlt classify --train-manifest` given synth's synthetic-only manifest.csv names merged.csv (the
real + synthetic manifest synth writes beside it) instead of a split it cannot find."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import fakedata  # noqa: E402

from tests.cli_run import run_cli  # noqa: E402


def test_synthetic_only_manifest_names_merged_csv(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "syn").mkdir()
    recipe = fakedata.make_real(tmp_path / "real")
    fakedata.make_synthetic(tmp_path / "real", tmp_path / "syn", plant_copy=False)
    manifest = tmp_path / "syn" / "manifest.csv"
    code, _, err = run_cli(["classify", recipe, "--out", tmp_path / "clf", "--train-manifest", manifest], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert str(tmp_path / "syn" / "merged.csv") in lines[0] and "every row is synthetic" in lines[0]
    assert "not there yet" in lines[0] and "set it to null" not in lines[0]
    assert not (tmp_path / "clf").exists()
    # with merged.csv beside it: named as the file to use, and it trains from there
    merged = fakedata.make_merged(tmp_path / "real", tmp_path / "syn", tmp_path)
    code, _, err = run_cli(["classify", recipe, "--out", tmp_path / "clf", "--train-manifest", manifest], capsys)
    assert code != 0 and str(merged) in err and "not there yet" not in err, err
