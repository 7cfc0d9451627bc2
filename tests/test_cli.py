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


@pytest.mark.parametrize("argv", [
    ["bench"],  # missing argument
    ["benc"],  # unknown verb
    ["bench", "recipe.yaml", "--out", "x", "--oracle-per-class", "1"],  # out-of-range value
    ["sample", "recipe.yaml", "--bogus"],  # unknown option
    ["data", "validate"],  # a sub-verb's missing argument
    ["synth", "recipe.yaml", "--out", "x", "--steps", "many"],  # not a number
])
def test_usage_errors_are_one_error_line(argv, capsys):
    """Every verb's command-line mistakes read like its other errors: one 'error:' line (click's own
    'Usage: ... Error: ...' block used to print for these, e.g. in `medlt bench`), exit 2."""
    from tests.cli_run import run_cli

    code, out, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert f"(see 'medlt {argv[0]}" in lines[0] or "(see 'medlt -h')" in lines[0]


def test_bare_verb_group_still_shows_its_help(capsys):
    from tests.cli_run import run_cli

    code, out, err = run_cli(["data"], capsys)
    assert code == 2 and "Usage: medlt data" in out + err and "error" not in (out + err).lower()


def test_version_prints_the_package_version(capsys, monkeypatch):
    import importlib.metadata

    import medlt
    from tests.cli_run import run_cli

    code, out, err = run_cli(["--version"], capsys)
    assert code == 0 and err == "" and out == f"medlt {importlib.metadata.version('medlt')}\n"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)  # a source checkout: medlt.__version__
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out == f"medlt {medlt.__version__}\n"
