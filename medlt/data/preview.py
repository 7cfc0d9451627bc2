"""Preview what the model will see: one PNG per sample after preprocessing (named by the sample
id), plus a contact sheet. CXR: the preprocessed image. CT: the three middle planes (axial, coronal,
sagittal) side by side, each upright in radiological display orientation (superior / anterior up,
the patient's right on the image's left). Images are written atomically."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np

from medlt.cliutils import progress
from medlt.data.table import Table
from medlt.data.transforms import display_plane
from medlt.utils.atomic import atomic_write_bytes

_SUFFIXES = (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".dcm")


def preview_name(sample_id: str) -> str:
    """File name for a sample id: image suffix dropped, unsafe characters replaced, + '.png'."""
    name = str(sample_id)
    for s in _SUFFIXES:
        if name.lower().endswith(s):
            name = name[: -len(s)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") + ".png"


def to_display(image, modality: str, window: tuple[float, float] = (-1.0, 1.0),
               voxel_mm: tuple[float, float, float] | None = None) -> np.ndarray:
    """Model-space sample -> (H, W) float in [0, 1] ready to save, upright. CT volumes: the axial,
    coronal and sagittal middle planes side by side; with `voxel_mm` each plane is stretched to
    its physical aspect ratio (square display pixels of the in-plane voxel size)."""
    x = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    lo, hi = window
    x = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    if x.ndim == 3:  # (1, H, W): CXR or an axial slice
        return x[0]
    vol = x[0]  # (X, Y, Z) RAS
    vx, vy, vz = voxel_mm or (1.0, 1.0, 1.0)
    cx, cy, cz = (s // 2 for s in vol.shape)
    planes = [_physical(display_plane(vol[:, :, cz]), vy / vx),
              _physical(display_plane(vol[:, cy, :]), vz / vx),
              _physical(display_plane(vol[cx, :, :]), vz / vx, col_scale=vy / vx)]
    height = max(p.shape[0] for p in planes)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 1)), constant_values=0.0) for p in planes]
    return np.concatenate(padded, axis=1)[:, :-1]


def _physical(plane: np.ndarray, row_scale: float, col_scale: float = 1.0) -> np.ndarray:
    """Resize rows/cols by the voxel aspect (bilinear), leaving 1:1 planes untouched."""
    h, w = plane.shape
    nh, nw = max(1, round(h * row_scale)), max(1, round(w * col_scale))
    if (nh, nw) == (h, w):
        return np.ascontiguousarray(plane)
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
                      .resize((nw, nh), Image.BILINEAR), dtype=np.float32)


def output_voxel_mm(data) -> tuple[float, float, float]:
    """Voxel size of the preprocessed CT volume: spacing_mm * crop_size / image_size."""
    sp = [float(s) for s in data.ct.spacing_mm]
    if data.ct.crop_size is None:
        return tuple(sp)
    return tuple(s * c / n for s, c, n in zip(sp, data.ct.crop_size, data.image_size, strict=True))


def preview_table(recipe, split: str) -> Table:
    """The recipe's table for previewing `split`: like medlt.data.table.load_table, except that
    roles whose split has no rows do not matter (only `split` is read); ValidationFailed lists
    every other problem."""
    from medlt.data.table import collect
    from medlt.errors import ValidationFailed

    table, problems = collect(recipe.data)
    roles = recipe.data.splits
    other = {f"data.splits.{role} = '{getattr(roles, role)}'" for role in ("train", "val", "test", "test_longtail")
             if getattr(roles, role) not in (None, split)}
    problems = [p for p in problems if not (p.code == "missing-split" and any(o in p.message for o in other))]
    if problems:
        raise ValidationFailed(problems)
    return table


def write_previews(table: Table, split: str, out_dir: Path, *, limit: int = 16,
                   show_progress: bool = True) -> list[Path]:
    """Preprocess the first `limit` rows of `split`, write <id>.png each and contact_sheet.png."""
    from medlt.data.io import write_png
    from medlt.data.loaders import dataset_from_frame

    frame = table.split(split).head(max(0, int(limit)))
    ds = dataset_from_frame(table, frame, augment=False, volumes=True, cache=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs, tiles = [], []
    window, voxel = (-1.0, 1.0), None
    if table.modality == "ct":
        ct = table.data.ct
        window = (ct.hu_window[0] / ct.hu_scale, ct.hu_window[1] / ct.hu_scale)
        voxel = output_voxel_mm(table.data)
    for i in progress(range(len(ds)), total=len(ds), desc=f"preview {split}", unit="img",
                      disable=not show_progress):
        item = ds[i]
        img = to_display(item["image"], table.modality, window, voxel)
        path = out_dir / preview_name(item["id"])
        write_png(path, img)
        pngs.append(path)
        tiles.append((item["id"], ", ".join(table.label_space.decode(table.label_matrix(frame)[i])), img))
    if tiles:
        pngs.append(contact_sheet(tiles, out_dir / "contact_sheet.png", title=f"{table.data.format} {split}"))
    return pngs


def contact_sheet(tiles: list[tuple[str, str, np.ndarray]], path: Path, *, title: str = "") -> Path:
    """Grid of (id, label text, image01) tiles with captions, saved as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(tiles)
    cols = min(n, 4 if tiles[0][2].shape[1] > 1.5 * tiles[0][2].shape[0] else 6)
    rows = math.ceil(n / cols)
    aspect = tiles[0][2].shape[1] / tiles[0][2].shape[0]
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols * aspect, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (ident, labels, img) in zip(axes.flat, tiles, strict=False):
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"{ident}\n{labels or '(none)'}", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
