"""Synthetic-image PNGs for quick looks: per-class sample grids (rows = classes, labelled) and
contact sheets. Every PNG carries a `medlt:synthetic=true` text chunk and is written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, PngImagePlugin

from medlt.utils.atomic import atomic_path


def to_display(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (C, H, W, D) model-space image -> (H, W) uint8; 3D shows the middle slice of D."""
    x = x.detach().float().cpu()[0]
    if x.dim() == 3:
        x = x[..., x.shape[-1] // 2]
    x01 = ((x + 1) / 2).clamp(0, 1).numpy()
    return np.round(x01 * 255).astype(np.uint8)


def save_png(path: str | Path, img: Image.Image, **text: str) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("medlt:synthetic", "true")
    for k, v in text.items():
        info.add_text(f"medlt:{k}", str(v))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def labelled_grid(images: torch.Tensor, row_names: Sequence[str], per_row: int, *,
                  pad: int = 2, label_width: int = 140) -> Image.Image:
    """images (R*per_row, C, ...) in row order -> one grayscale image with a name left of each row."""
    tiles = [to_display(im) for im in images]
    h, w = tiles[0].shape
    rows = len(row_names)
    canvas = Image.new("L", (label_width + per_row * (w + pad) + pad, rows * (h + pad) + pad), color=0)
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(row_names):
        y = pad + r * (h + pad)
        draw.text((4, y + max(0, h // 2 - 6)), str(name)[:22], fill=255)
        for c in range(per_row):
            canvas.paste(Image.fromarray(tiles[r * per_row + c]), (label_width + pad + c * (w + pad), y))
    return canvas


def contact_sheet(images: torch.Tensor, columns: int = 8, pad: int = 2) -> Image.Image:
    tiles = [to_display(im) for im in images]
    h, w = tiles[0].shape
    rows = (len(tiles) + columns - 1) // columns
    canvas = Image.new("L", (columns * (w + pad) + pad, rows * (h + pad) + pad), color=0)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas.paste(Image.fromarray(t), (pad + c * (w + pad), pad + r * (h + pad)))
    return canvas


def class_rows(label_space) -> tuple[list[str], torch.Tensor]:
    """One row per class: its name and its label (index, or one-hot vector when multi-label)."""
    k = label_space.num_classes
    if label_space.multi_label:
        return list(label_space.names), torch.eye(k)
    return list(label_space.names), torch.arange(k)
