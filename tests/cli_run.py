"""Run the medlt CLI in-process the way a user's shell would, for tests."""

from __future__ import annotations


def run_cli(args, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `medlt ARGS` (args may hold Paths)."""
    from medlt.cli import main

    try:
        main(list(map(str, args)))
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err
