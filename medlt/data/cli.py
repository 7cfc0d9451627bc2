"""`medlt data ...`: validate, stats and preview a recipe's dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medlt.cliutils import RECIPE_ARG, SET_OPT, load_recipe_cli

data_app = typer.Typer(
    name="data",
    help="Check and inspect the dataset a recipe points at (data.format, data.root, data.labels).",
    no_args_is_help=True,
    add_completion=False,
)


def image_kind(table) -> str:
    """What the table's images are, in words: "CXR images" / "CT volumes" for the chest formats,
    "2D images" / "NIfTI volumes" for a generic manifest."""
    if table.data.format == "manifest":
        return "NIfTI volumes" if table.modality == "ct" else "2D images"
    return "CT volumes" if table.modality == "ct" else "CXR images"


@data_app.command("validate")
def validate_cmd(
    recipe: Path = RECIPE_ARG,
    sets: list[str] = SET_OPT,
    skip_images: bool = typer.Option(False, "--skip-images",
                                     help="Only check the label tables, do not open the images."),
    workers: int = typer.Option(4, "--workers", min=1, help="Threads that decode images."),
) -> None:
    """Check every row of every split and list ALL problems, one line each ("file:row: code message"):
    missing or unreadable/truncated images, 4D volumes and images or volumes with a side of 1,
    paths that leave their root (also through symlinks), unknown or missing class columns, label values other than
    0/1, single-label rows with no or several positives, duplicate ids, patients in more than one split,
    paths leaving data.root, CT volumes without metadata. Exits non-zero when anything is wrong."""
    from medlt.data.table import collect
    from medlt.data.validate import validate_table
    from medlt.errors import ValidationFailed

    r = load_recipe_cli(recipe, sets)
    table, problems = collect(r.data)
    problems += validate_table(table, check_images=not skip_images, workers=workers)
    if problems:
        problems.sort(key=lambda p: (p.file, -1 if p.row is None else p.row, p.code))
        raise ValidationFailed(problems)
    per_split = ", ".join(f"{s} {int((table.frame['split'] == s).sum())}" for s in table.splits)
    what = "labels only" if skip_images else "all images decoded"
    typer.echo(f"ok: {len(table.frame)} {image_kind(table)}, {table.label_space.num_classes} "
               f"classes ({'multi' if table.label_space.multi_label else 'single'}-label), splits: "
               f"{per_split}; {what}")


@data_app.command("stats")
def stats_cmd(
    recipe: Path = RECIPE_ARG,
    sets: list[str] = SET_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
) -> None:
    """Images per split and class, the head/medium/tail group of each class (from the training
    counts and data.group_thresholds) and the imbalance ratio (largest / smallest training class)."""
    from medlt.data.stats import compute_stats, render_stats
    from medlt.data.table import load_table

    r = load_recipe_cli(recipe, sets)
    stats = compute_stats(load_table(r))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
    else:
        render_stats(stats)


@data_app.command("preview")
def preview_cmd(
    recipe: Path = RECIPE_ARG,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the PNGs (created)."),
    split: str = typer.Option(None, "--split", help="Official split name; default: the train role's split."),
    limit: int = typer.Option(16, "--limit", min=1, help="How many samples."),
    sets: list[str] = SET_OPT,
) -> None:
    """Write one PNG per sample after preprocessing (as the model sees it), named by the sample id,
    plus contact_sheet.png. CT: the axial, coronal and sagittal middle planes side by side, upright."""
    from medlt.data.bad_images import write_skipped_images
    from medlt.data.preview import preview_table, write_previews

    r = load_recipe_cli(recipe, sets)
    split = split or r.data.splits.train
    table = preview_table(r, split)
    paths = write_previews(table, split, out, limit=limit)
    skipped = write_skipped_images(out)
    typer.echo(f"wrote {len(paths) - 1} previews and {paths[-1].name} to {out}"
               + (f"; skipped images listed in {skipped}" if skipped else ""))


def register(app: typer.Typer) -> None:
    """Add `medlt data ...` to the top-level app."""
    app.add_typer(data_app, name="data")
