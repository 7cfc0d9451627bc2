"""Progress: plain periodic lines (rate, ETA) when stderr is not a terminal, throttled; MEDLT_PROGRESS
picks bar / lines / off."""

import pytest

from medlt.errors import MedltError
from medlt.utils import progress as prog
from medlt.utils.progress import Progress, progress, progress_mode


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch):
    monkeypatch.setattr(prog, "_last_line", [0.0])
    monkeypatch.delenv("MEDLT_PROGRESS", raising=False)
    monkeypatch.delenv("MEDLT_PROGRESS_INTERVAL_S", raising=False)


def test_not_a_terminal_gives_plain_lines_with_rate_and_eta(monkeypatch, capsys):
    monkeypatch.setenv("MEDLT_PROGRESS_INTERVAL_S", "0")
    assert progress_mode() == "lines"  # pytest's captured stderr is not a terminal
    assert list(progress(range(4), desc="synth", unit="img")) == [0, 1, 2, 3]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5  # one per item (interval 0) + the closing line
    assert lines[0].startswith("synth: 1/4 img (25%), ") and " img/s, elapsed 0:00:00, ETA " in lines[0]
    assert lines[-1].startswith("synth: 4/4 img (100%)") and lines[-1].endswith("done")


def test_lines_are_throttled_and_short_loops_are_silent(monkeypatch, capsys):
    monkeypatch.setenv("MEDLT_PROGRESS_INTERVAL_S", "3600")
    list(progress(range(1000), desc="quick"))
    assert capsys.readouterr().err == ""


def test_resumed_count_and_postfix(monkeypatch, capsys):
    monkeypatch.setenv("MEDLT_PROGRESS_INTERVAL_S", "0")
    with Progress(10, desc="train", unit="step", initial=6) as p:
        p.update(1, {"loss": "0.05"})
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("train: 7/10 step (70%)") and lines[0].endswith("loss=0.05")
    assert "stopped" in lines[-1]  # closed before the total: not reported as done


@pytest.mark.parametrize("value, mode", [("off", "off"), ("0", "off"), ("lines", "lines"), ("bar", "bar"),
                                         ("1", "bar"), ("auto", "lines")])
def test_env_values(monkeypatch, value, mode):
    monkeypatch.setenv("MEDLT_PROGRESS", value)
    assert progress_mode() == mode


def test_off_and_disabled_print_nothing(monkeypatch, capsys):
    monkeypatch.setenv("MEDLT_PROGRESS_INTERVAL_S", "0")
    list(progress(range(3), desc="x", disable=True))
    monkeypatch.setenv("MEDLT_PROGRESS", "off")
    list(progress(range(3), desc="x"))
    assert capsys.readouterr().err == ""


def test_bad_values_are_one_line_errors(monkeypatch):
    monkeypatch.setenv("MEDLT_PROGRESS", "yes")
    with pytest.raises(MedltError, match="MEDLT_PROGRESS='yes' is not one of: auto, bar"):
        progress_mode()
    monkeypatch.setenv("MEDLT_PROGRESS", "lines")
    monkeypatch.setenv("MEDLT_PROGRESS_INTERVAL_S", "soon")
    with pytest.raises(MedltError, match="MEDLT_PROGRESS_INTERVAL_S='soon'"):
        Progress(3)
