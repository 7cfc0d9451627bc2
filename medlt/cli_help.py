"""Help text that wraps at the terminal's width instead of at the source's line breaks.

Typer's rich help keeps the single line breaks of a command's docstring after its first
paragraph, then wraps each source line again at the terminal width, so an 80-column terminal
showed sentences cut in the middle. `reflow` joins the lines of each paragraph (a blank line
separates paragraphs) and keeps only the breaks that carry meaning: before a list item
("- ", "* ", "1. "), before an indented line, and everywhere in a paragraph that starts with
click's no-rewrap marker "\\b". `tidy_help(app)` applies it to every command of a Typer app
and of its sub-apps, once, after the verbs are registered.
"""

from __future__ import annotations

import inspect
import re

_KEEP_BREAK = re.compile(r"^(\s+|[-*] |\d+[.)] )")


def reflow(text: str) -> str:
    """Join the single line breaks inside each paragraph of `text` (see the module docstring)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for para in paragraphs:
        if para.startswith("\b"):
            out.append(para)
            continue
        lines: list[str] = []
        for line in para.split("\n"):
            if lines and not _KEEP_BREAK.match(line):
                lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
            else:
                lines.append(line.rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def tidy_help(app) -> None:
    """Reflow the help of every command registered on a Typer `app` and its sub-apps (in place)."""
    for cmd in app.registered_commands:
        text = cmd.help if cmd.help is not None else inspect.getdoc(cmd.callback)
        if text:
            cmd.help = reflow(text)
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is not None:
            tidy_help(sub)
