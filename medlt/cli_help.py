"""Help text that fits the terminal: no option name cut, no sentence broken at a source line break.

Two problems of Typer's rich help, both seen at 80 columns:
- its option tables shrink every column to fit, so long option names ("--feature-extractor-recipe",
  "--bootstrap-resamples") were cut with "…" as soon as a verb had a few of them;
- it keeps the single line breaks of a docstring after the first paragraph and wraps each source
  line again, so sentences broke in the middle.
`tidy_help(app)` therefore renders help with click's plain formatter (`rich_markup_mode=None`:
option names are never shortened, a long one puts its help on the next line, paragraphs are
re-wrapped to the terminal, at most 80 columns wide), and reflows every command's help
(`reflow`: joins the lines of each paragraph, keeping breaks before list items, indented lines and
in paragraphs that start with click's no-rewrap marker "\\b") so either formatter reads well.
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


def _first_paragraph(text: str) -> str:
    return text.split("\n\n", 1)[0].replace("\n", " ").strip()


def tidy_help(app, *, plain: bool = True) -> None:
    """Reflow the help of every command registered on a Typer `app` and its sub-apps (in place);
    `plain`: render with click's formatter (set on the top-level app, sub-apps inherit it).
    Each command's one-line summary in the verb list is its whole first paragraph (click would
    otherwise cut it at a few dozen characters with "...")."""
    if plain:
        app.rich_markup_mode = None
    for cmd in app.registered_commands:
        text = cmd.help if cmd.help is not None else inspect.getdoc(cmd.callback)
        if text:
            cmd.help = reflow(text)
            if cmd.short_help is None:
                cmd.short_help = _first_paragraph(cmd.help)
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is None:
            continue
        text = group.help if isinstance(group.help, str) else sub.info.help
        if isinstance(text, str) and text and not isinstance(group.short_help, str):
            group.short_help = _first_paragraph(reflow(text))
        tidy_help(sub, plain=False)
