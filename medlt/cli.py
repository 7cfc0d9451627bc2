"""`medlt` command line. Each area adds its verbs through a `register(app)` function in its own
`cli.py`; this module owns the top-level app, `--debug`, and turning errors into one-line messages.
"""

from __future__ import annotations

import sys

import typer

from medlt.cli_help import tidy_help
from medlt.errors import MedltError, ValidationFailed

app = typer.Typer(
    name="medlt",
    help=(
        "Long-tailed medical image synthesis.\n\n"
        "Typical flow: `medlt phantom` (or your real data) -> `medlt data validate RECIPE` -> "
        "`medlt train RECIPE` -> `medlt synth RECIPE` -> `medlt classify` / `medlt evaluate`. "
        "Every verb takes a recipe YAML (see recipes/) and `--set key.path=value` overrides.\n\n"
        "Progress goes to stderr: a bar on a terminal, otherwise one plain line (count, rate, ETA) at most "
        "every 15 s. Environment: MEDLT_PROGRESS=auto (default) | bar (or 1) | lines | off (or 0); "
        "MEDLT_PROGRESS_INTERVAL_S=seconds between plain lines.\n\n"
        "Errors are one line each with a non-zero exit (2 for recipe and command-line errors); --debug shows "
        "tracebacks."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def package_version() -> str:
    """The installed medlt's version (package metadata), else medlt.__version__ (a source checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medlt")
    except PackageNotFoundError:
        from medlt import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"medlt {package_version()}")
        raise typer.Exit(0)


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print medlt's version and exit."),
) -> None:
    _state["debug"] = debug


def _register_areas() -> None:
    # Imported here so `medlt --help` stays fast: each area's cli module defers heavy imports
    # (torch, monai) into its command bodies.
    from medlt.autoencoder import cli as autoencoder_cli
    from medlt.bench import cli as bench_cli
    from medlt.classify import cli as classify_cli
    from medlt.data import cli as data_cli
    from medlt.diffusion import cli as diffusion_cli
    from medlt.phantom import cli as phantom_cli
    from medlt.report import cli as report_cli
    from medlt.synth import cli as synth_cli

    for area in (phantom_cli, data_cli, diffusion_cli, autoencoder_cli, synth_cli, classify_cli, report_cli,
                 bench_cli):
        area.register(app)


_register_areas()
tidy_help(app)  # help wraps at the terminal width, not at the docstrings' line breaks


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        # standalone_mode=False: click hands usage errors to us instead of printing "Error: ..."
        code = app(args=argv, prog_name="medlt", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)  # as standalone click does (--help, typer.Exit(n))
    except typer.TyperException as e:  # click's usage errors: unknown option or verb, bad or missing value
        if type(e).__name__ == "NoArgsIsHelpError":  # `medlt` or `medlt data` alone: show the help
            e.show()
        elif debug:
            raise
        else:
            print(f"error: {usage_error_line(e)}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except typer.Abort:  # click turns Ctrl-C inside a verb into Abort
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except ValidationFailed as e:
        if debug:
            raise
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"error: {len(e.problems)} problem(s); nothing was changed", file=sys.stderr)
        sys.exit(e.exit_code)
    except MedltError as e:
        if debug:
            raise
        for line in str(e).splitlines() or [e.__class__.__name__]:
            print(f"error: {line}", file=sys.stderr)
        sys.exit(e.exit_code)
    except OSError as e:  # read-only output, full disk, a file where a folder should be, ...
        if debug:
            raise
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def usage_error_line(e: typer.TyperException) -> str:
    """One line for a command-line usage error, with where to find the verb's help."""
    msg = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    return f"{msg} (see '{ctx.command_path} -h')" if ctx is not None else msg


def os_error_line(e: OSError) -> str:
    """'PATH: CAUSE' (or 'SRC -> DST: CAUSE') for an operating-system error."""
    cause = e.strerror or str(e) or e.__class__.__name__
    if e.filename is not None and e.filename2 is not None:
        return f"{e.filename} -> {e.filename2}: {cause}"
    if e.filename is not None:
        return f"{e.filename}: {cause}"
    return cause
