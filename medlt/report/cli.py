"""`medlt report DIR1 DIR2 ...`: compare evaluations in one table."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    dirs: list[Path] = typer.Argument(..., help="Evaluation folders written by `medlt evaluate --out DIR` "
                                                 "(each holds report.json).", show_default=False),
    html: Path = typer.Option(None, "--html", help="Also write a self-contained HTML comparison (tables + "
                                                    "per-class recall plot) to this file."),
) -> None:
    """Compare several evaluations (e.g. real-only vs real+synthetic classifiers) in one table.

    Prints a Markdown table to stdout: balanced accuracy with head/medium/tail means, macro-F1/MCC
    (or AUROC/mAP for multi-label) per test role, overall FID and its feature extractor.
    """
    from medlt.report.compare import compare_html, compare_markdown
    from medlt.utils.atomic import atomic_write_text

    typer.echo(compare_markdown(dirs))
    if html is not None:
        atomic_write_text(html, compare_html(dirs))
        typer.echo(f"wrote {html}", err=True)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
