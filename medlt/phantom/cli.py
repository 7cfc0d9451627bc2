"""`medlt phantom`: write a long-tailed phantom dataset in an official layout."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class Layout(str, Enum):
    nih = "nih-cxr-lt"
    mimic = "mimic-cxr-lt"
    ct = "ct-rate"


def phantom(
    ctx: typer.Context,
    layout: Layout = typer.Option(..., "--layout", "-l", metavar="<layout>",
                                  help="Official layout to imitate: nih-cxr-lt, mimic-cxr-lt or ct-rate.",
                                  show_default=False, case_sensitive=False),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (new, empty, or a previous phantom; a phantom stopped "
                             "while writing is restarted there).",
                             show_default=False),
    num_images: int | None = typer.Option(
        None, "--num-images", "-n",
        help="Training images (CT-RATE: training scans). Default: 800 for CXR layouts, 48 for CT-RATE."),
    image_size: int | None = typer.Option(
        None, "--image-size", "-s",
        help="Image side in pixels (CT: X = Y = size, Z = 0.75 * size). Default: 64 (CXR), 32 (CT)."),
    imbalance_ratio: float = typer.Option(
        0.01, "--imbalance-ratio", "-r",
        help="r = n_min / n_max of the training class counts n_c = n_max * r^(c/(C-1)); "
             "a value > 1 is read as n_max / n_min (100 = 0.01)."),
    seed: int = typer.Option(0, "--seed", help="Same seed and options -> byte-identical files."),
    multi_label: bool = typer.Option(
        False, "--multi-label",
        help="NIH-CXR-LT: write the multi-label miccai2023_* CSVs (train/val/test) with several findings "
             "per image. CT-RATE is always multi-label; MIMIC-CXR-LT is single-label only."),
    per_class: int | None = typer.Option(
        None, "--per-class",
        help="Balanced set instead of a long tail: exactly N training images per class (CT-RATE: N "
             "positive training scans per class), e.g. to train a phantom oracle "
             "(`medlt oracle`). Excludes --num-images and --imbalance-ratio."),
) -> None:
    """Write a long-tailed phantom dataset (no patient data) in an official layout.

    Each class shows a known, visible finding (e.g. Cardiomegaly: a large heart; Effusion: a fluid
    meniscus at a lung base; Pneumothorax: a collapsed lung with a pleural line; CT-RATE: 18 findings
    in HU). Splits are patient-disjoint; CXR layouts get train / balanced-val / test / balanced-test,
    CT-RATE train / valid. Point a recipe at it with
    `--set data.root=OUT --set data.labels=OUT` (or use recipes/phantom/*.yaml).
    """
    from medlt.cliutils import progress
    from medlt.phantom import write_phantom

    if per_class is not None and ctx.get_parameter_source("imbalance_ratio").name != "DEFAULT":
        from medlt.errors import DataError

        raise DataError("--per-class writes a balanced set (imbalance ratio 1); drop --imbalance-ratio")
    if per_class is not None:
        imbalance_ratio = 1.0
    summary = write_phantom(layout.value, out, num_images=num_images, image_size=image_size,
                            imbalance_ratio=imbalance_ratio, seed=seed, multi_label=multi_label,
                            per_class=per_class, progress=progress)
    typer.echo(summary.line())


def register(app: typer.Typer) -> None:
    """Add `medlt phantom` to the top-level app."""
    app.command("phantom")(phantom)
