"""`medlt <verb> --help` reads well at 80 and 200 columns: no option name cut, no ellipsis, no
sentence broken at the source's line breaks, nothing wider than the terminal."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from medlt.cli import app
from medlt.cli_help import reflow


def _commands():
    def walk(cmd, path):
        yield path, cmd
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


COMMANDS = _commands()
FOLDED_TYPE = re.compile(r"<(?!int range>|float range>)[a-z][\w\[\]|.=-]*(?=\s)")


def _help(path: list[str], width: int) -> str:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)}, prog_name="medlt")
    assert res.exit_code == 0, res.output
    return res.output


def test_every_verb_is_checked():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"phantom", "train", "sample", "synth", "classify", "evaluate", "report", "data validate",
            "data stats", "data preview"} <= names


def _description(out: str) -> list[list[str]]:
    """The paragraphs (lists of lines) between the usage line and the first section heading."""
    paras, cur = [], []
    for line in out.splitlines()[1:]:
        if line and not line.startswith(" "):  # "Arguments:", "Options:", "Commands:"
            break
        if line.strip():
            cur.append(line)
        elif cur:
            paras.append(cur)
            cur = []
    return paras + ([cur] if cur else [])


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "medlt" for p, _ in COMMANDS])
def test_help_fits_and_keeps_option_names_whole(path, cmd, width):
    out = _help(path, width)
    lines = out.splitlines()
    assert "…" not in out, "\n".join(line for line in lines if "…" in line)
    assert max(len(line) for line in lines) <= width
    for param in cmd.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("--"):
                assert re.search(re.escape(opt) + r"(?![\w-])", out), f"{opt} is cut in `{' '.join(path)} --help`"
    for line in lines:  # a type like <nih-cxr-lt|...> folded over two lines leaves "<name" open
        assert not FOLDED_TYPE.search(line), line
    if "Commands:" in out:  # verb summaries are whole sentences, not cut with "..."
        listing = out.split("Commands:", 1)[1].splitlines()
        assert not [line for line in listing if line.rstrip().endswith("...")], listing


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "medlt" for p, _ in COMMANDS])
def test_description_is_wrapped_greedily_not_at_source_line_breaks(path, cmd, width):
    """A line of a description paragraph ends early only if the next word would not have fitted:
    a break left over from the docstring's own line breaks fails this."""
    wrap = min(width, 80) - 2  # click: at most 80 columns, 2 for the margin
    for para in _description(_help(path, width)):
        for line, nxt in zip(para, para[1:], strict=False):
            chunk = re.match(r"\S+?-(?=\w)|\S+", nxt.strip()).group(0)  # textwrap may break after a hyphen
            assert len(line) + 1 + len(chunk) > wrap, f"`{' '.join(path)} --help` breaks early: {line!r}"


def test_reflow_joins_lines_but_keeps_lists_and_verbatim_blocks():
    text = """First line
    goes on.

    Second paragraph
    continues here
    - a list item
    - another

    \b
    verbatim
    block"""
    assert reflow(text) == ("First line goes on.\n\nSecond paragraph continues here\n- a list item\n"
                            "- another\n\n\b\nverbatim\nblock")


def test_reflow_is_what_the_synth_help_shows():
    """The failure this guards against: 'to_count:N |' ending a line at 80 columns."""
    out = _help(["synth"], 80)
    assert not [line for line in out.splitlines() if line.rstrip().endswith("to_count:N |")]
    flat = re.sub(r"\s+", " ", out)
    assert "(--quota to_head | to_count:N | to_ratio:R)" in flat
