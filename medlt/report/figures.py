"""Report figures (matplotlib, Agg backend) returned as PNG bytes; `save_pair_png` writes one
side-by-side pair atomically."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlt.utils.atomic import atomic_write_bytes

GROUP_COLOURS = {"head": "#1f77b4", "medium": "#ff7f0e", "tail": "#d62728"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _width(n: int) -> float:
    return min(max(6.0, 0.45 * n + 2), 18.0)


def class_counts_png(names: Sequence[str], counts: Sequence[int], groups: Sequence[str]) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(_width(len(names)), 3.8))
    ax.bar(range(len(names)), [max(c, 0.8) for c in counts], color=[GROUP_COLOURS[g] for g in groups])
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("training images (log)")
    ax.set_title("Training class counts")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=g) for g, c in GROUP_COLOURS.items()], fontsize=8)
    return _png(fig)


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def has_values(series: dict[str, Sequence[float | None]]) -> bool:
    """True when at least one value of one series can be drawn (callers skip empty plots with a note)."""
    return any(_finite(x) for vals in series.values() for x in vals)


def per_class_bars_png(names: Sequence[str], series: dict[str, Sequence[float | None]], *, ylabel: str,
                       title: str, ylim01: bool = True,
                       errors: dict[str, Sequence[Sequence[float] | None]] | None = None,
                       missing_note: str | None = None) -> bytes:
    """Grouped bars per class; `errors`: per series, a (low, high) interval per class (or None);
    `missing_note`: text written at the foot of classes without any value (e.g. "too few images")."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(_width(len(names)), 3.8))
    k = max(len(series), 1)
    w = 0.8 / k
    for j, (label, vals) in enumerate(series.items()):
        v = [x if _finite(x) else np.nan for x in vals]
        yerr = None
        if errors and label in errors:
            iv = errors[label]
            yerr = np.array([[max(0.0, y - i[0]) if (i and _finite(y) and _finite(i[0])) else 0.0 for y, i in zip(v, iv, strict=True)],
                             [max(0.0, i[1] - y) if (i and _finite(y) and _finite(i[1])) else 0.0 for y, i in zip(v, iv, strict=True)]])
        ax.bar(np.arange(len(names)) + (j - (k - 1) / 2) * w, v, width=w, label=label, yerr=yerr, capsize=2)
    if missing_note:
        ax.set_xlim(-0.7, len(names) - 0.3)
        for i in range(len(names)):
            if not any(_finite(vals[i]) for vals in series.values()):
                ax.text(i, 0.02, missing_note, rotation=90, ha="center", va="bottom", fontsize=7, color="#888",
                        transform=ax.get_xaxis_transform())
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if ylim01:
        ax.set_ylim(0, 1)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _png(fig)


def ratio_histogram_png(edges: Sequence[float | None], counts: Sequence[int], threshold: float, *,
                        title: str) -> bytes:
    """Histogram of memorization distance ratios (fixed bins; the last bin holds ratios beyond the
    last finite edge), with the flagging threshold as a vertical line."""
    plt = _plt()
    fin = [e for e in edges if e is not None]
    width = fin[1] - fin[0]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.bar([e + width / 2 for e in fin], counts, width=width * 0.95, color="#7f7f7f")
    ax.axvline(threshold, color="#d62728", linestyle="--", label=f"flagged at <= {threshold:g}")
    ax.set_xlabel(f"d(s, r*) / d(r*, nearest other real)  (last bar: >= {fin[-1]:g})")
    ax.set_ylabel("synthetic images")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)


def confusion_matrix_png(cm: Sequence[Sequence[int]], names: Sequence[str], title: str) -> bytes:
    plt = _plt()
    m = np.asarray(cm, dtype=float)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(names)
    fig, ax = plt.subplots(figsize=(min(3 + 0.4 * n, 14), min(2.5 + 0.4 * n, 13)))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="row-normalised")
    ax.set_title(title)
    return _png(fig)


def sample_grid_png(grid: dict[str, dict[str, list]], per_class: int) -> bytes:
    """One row per class: `per_class` real images, then `per_class` synthetic ones."""
    plt = _plt()
    names = list(grid)
    cols = 2 * per_class
    fig, axes = plt.subplots(len(names), cols, figsize=(1.1 * cols + 1.8, 1.1 * len(names) + 0.5),
                             squeeze=False, layout="constrained")
    for r, name in enumerate(names):
        for side, offset in (("real", 0), ("synthetic", per_class)):
            imgs = grid[name][side]
            for c in range(per_class):
                ax = axes[r, offset + c]
                ax.set_xticks([])
                ax.set_yticks([])
                for s in ax.spines.values():
                    s.set_color("#2ca02c" if side == "real" else "#9467bd")
                    s.set_linewidth(2)
                if c < len(imgs):
                    ax.imshow(np.asarray(imgs[c]), cmap="gray", vmin=0, vmax=1)
                else:
                    ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=7, color="#888",
                            transform=ax.transAxes)
                if r == 0:
                    ax.set_title(side, fontsize=8)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Samples per class: real (green) beside synthetic (purple)", fontsize=10)
    return _png(fig)


def pair_png(synthetic01, real01, *, title: str, labels: tuple[str, str]) -> bytes:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(5, 2.9))
    for ax, img, lab in zip(axes, (synthetic01, real01), labels, strict=True):
        ax.imshow(np.asarray(img), cmap="gray", vmin=0, vmax=1)
        ax.set_title(lab, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def save_pair_png(path: str | Path, synthetic01, real01, *, title: str, labels: tuple[str, str]) -> Path:
    return atomic_write_bytes(path, pair_png(synthetic01, real01, title=title, labels=labels))
