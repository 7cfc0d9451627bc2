import subprocess
import sys

import pytest
import typer.main

from medlt.cli import app, main


def test_help_lists_verbs():
    out = subprocess.run([sys.executable, "-m", "medlt", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Long-tailed medical image synthesis" in out.stdout


def _paths(cmd, prefix=()):
    if hasattr(cmd, "commands"):  # a group (typer vendors click)
        for name, sub in cmd.commands.items():
            yield from _paths(sub, (*prefix, name))
    else:
        yield prefix


def test_every_verb_has_help():
    paths = list(_paths(typer.main.get_command(app)))
    for expected in [("phantom",), ("data", "validate"), ("data", "stats"), ("data", "preview"), ("train",),
                     ("sample",), ("synth",), ("classify",), ("evaluate",), ("report",)]:
        assert expected in paths, f"medlt {' '.join(expected)} is missing"
    for path in paths:
        with pytest.raises(SystemExit) as e:
            main([*path, "--help"])
        assert e.value.code == 0


def test_help_documents_progress_environment(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "MEDLT_PROGRESS=auto (default) | bar (or 1) | lines | off (or 0)" in out
    assert "MEDLT_PROGRESS_INTERVAL_S" in out


def test_os_errors_become_one_line_with_path_and_cause(monkeypatch, capsys):
    import errno

    import medlt.cli as cli

    def boom(*_a, **_k):
        raise PermissionError(errno.EACCES, "Permission denied", "/ro/run/metrics.csv")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as e:
        main(["train", "x.yaml"])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == ["error: /ro/run/metrics.csv: Permission denied"]
