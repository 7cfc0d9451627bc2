"""`medlt report DIR1 DIR2 ...`: compare evaluations in one table."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    dirs: list[Path] = typer.Argument(..., help="Evaluation folders written by `medlt evaluate --out DIR` "
                                                 "(each holds report.json).", show_default=False),
    html: Path = typer.Option(None, "--html", help="Also write a self-contained HTML comparison (tables + "
                                                    "per-class recall plot) to this file."),
    bootstrap_resamples: int = typer.Option(1000, "--bootstrap-resamples",
                                            help="Resamples of the paired bootstrap of each difference "
                                                 "(at least 100)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the paired bootstrap (>= 0)."),
) -> None:
    """Compare several evaluations (e.g. real-only vs real+synthetic classifiers) in one table.

    Prints Markdown to stdout: balanced accuracy (with its 95% CI) and head/medium/tail means,
    macro-F1/MCC (or AUROC/mAP for multi-label) per test role, overall FID and its feature
    extractor; then, for every run after the first, the paired difference to the first run on the
    same test images (matched by image id from DIR/predictions_<role>.csv) with a 95% paired
    bootstrap interval: "not significant" when it contains 0. Different test sets, classes or label
    modes are an error. Runs are labelled by the shortest path suffix that tells them apart
    (bench/real/c0/eval and bench/plain/g0/c0/eval: "real/c0/eval" and "g0/c0/eval").
    Example: medlt report runs/eval-real runs/eval-real+syn
    """
    from medlt.report.compare import compare_html, compare_markdown
    from medlt.utils.atomic import atomic_write_text

    _check_arguments(dirs, bootstrap_resamples)  # before any file is read
    kw = dict(bootstrap_resamples=bootstrap_resamples, seed=seed)
    typer.echo(compare_markdown(dirs, **kw))
    if html is not None:
        atomic_write_text(html, compare_html(dirs, **kw))
        typer.echo(f"wrote {html}", err=True)


def _check_arguments(dirs: list[Path], bootstrap_resamples: int) -> None:
    """UsageError (exit 2, as other command-line errors) for too few resamples or a run given twice."""
    from medlt.errors import DataError, UsageError
    from medlt.report.paired import check_resamples

    try:
        check_resamples(bootstrap_resamples)
    except DataError as e:
        raise UsageError(str(e)) from None
    seen: dict[Path, Path] = {}
    for d in dirs:
        key = _run_folder(d)
        if key in seen:
            what = f"{d} is given twice" if str(seen[key]) == str(d) else f"{seen[key]} and {d} are the same run"
            raise UsageError(f"{what}; give each evaluation folder once")
        seen[key] = d


def _run_folder(d: Path) -> Path:
    """The evaluation folder `d` names, resolved: DIR and DIR/report.json are one run."""
    p = d.resolve()
    return p.parent if p.name == "report.json" and p.is_file() else p


def register(app: typer.Typer) -> None:
    app.command("report")(report)
