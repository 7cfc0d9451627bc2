"""`medlt tune-guidance --out FILE`: refused in one line before the checkpoint is loaded or any
scale is sampled."""

from pathlib import Path

import pytest

from tests.cli_run import run_cli

NIH = Path(__file__).resolve().parents[2] / "recipes" / "phantom" / "nih_cxr_lt.yaml"


@pytest.mark.parametrize("under", [False, True])
def test_out_is_a_file(tmp_path, capsys, monkeypatch, under):
    import medlt.diffusion.tune_guidance as tg

    def never(*a, **k):
        raise AssertionError("tune_guidance ran although --out is a file")

    monkeypatch.setattr(tg, "tune_guidance", never)
    f = tmp_path / "guidance.json"
    f.write_text("{}")
    out = f / "sub" if under else f
    code, stdout, err = run_cli(["tune-guidance", NIH, "--checkpoint", tmp_path / "run", "--reference-classifier",
                                 tmp_path / "clf", "--out", out, "--device", "cpu"], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: --out {out}: ") and "not a folder" in lines[0]
    assert (f"lies under the file {f}" if under else "is a file") in lines[0]
    assert f.read_text() == "{}"
