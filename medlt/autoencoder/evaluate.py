"""`medlt evaluate-autoencoder`: how well the autoencoder reconstructs each class (a finding the
autoencoder cannot reconstruct, latent diffusion cannot generate).

Per test image x and its reconstruction x̂ = decode(μ(x)) (EMA weights), in model space [-1, 1]
(data_range 2), with MONAI's metrics:
  - PSNR (dB) = 10·log10(2² / mean((x̂ − x)²))  (PSNRMetric, max_val 2);
  - SSIM: Gaussian window σ = 1.5 of `ssim_window` px (11, or the largest odd size that fits the
    smallest side) (SSIMMetric);
  - MS-SSIM: window and scales from the image size as medlt.metrics.diversity.ms_ssim_settings picks
    them (MultiScaleSSIMMetric).
Per class: the mean over the test images of that class (multi-label: images positive for it). Per
group (head/medium/tail by training counts, data.group_thresholds): the mean over the group's
classes of the per-class means. The `worst_per_class` lowest-PSNR images of each class are saved
side by side (input | reconstruction | |difference| scaled to [0, 2]; 3D: middle slice).

Output folder: report.json, report.md, worst/<class>/<rank>_<id>.png (all written atomically).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from medlt.autoencoder.load import load_autoencoder
from medlt.errors import DataError, RecipeError
from medlt.utils.atomic import atomic_write_text

METRICS = ("psnr_db", "ssim", "ms_ssim")


def ssim_window(spatial_shape: Sequence[int]) -> int:
    """11 px, or the largest odd window <= the smallest side (>= 3)."""
    side = int(min(spatial_shape))
    k = min(11, side if side % 2 else side - 1)
    if k < 3:
        raise DataError(f"SSIM needs images of at least 3 px per side, got {list(spatial_shape)}")
    return k


def reconstruction_metrics(x: torch.Tensor, recon: torch.Tensor, ms_settings: dict) -> dict[str, torch.Tensor]:
    """Per-image PSNR (dB), SSIM and MS-SSIM of x̂ vs x, both (B, C, *spatial) in [-1, 1]: (B,) each."""
    from monai.metrics import MultiScaleSSIMMetric, PSNRMetric, SSIMMetric

    d = x.dim() - 2
    x, recon = x.float(), recon.float()
    psnr = PSNRMetric(max_val=2.0, reduction="none")(recon, x).reshape(-1)
    ssim = SSIMMetric(spatial_dims=d, data_range=2.0, win_size=ssim_window(x.shape[2:]), kernel_sigma=1.5,
                      reduction="none")(recon, x).reshape(x.shape[0], -1).mean(1)
    ms = MultiScaleSSIMMetric(spatial_dims=d, data_range=2.0, kernel_size=ms_settings["kernel_size"],
                              kernel_sigma=ms_settings["kernel_sigma"], weights=ms_settings["weights"],
                              reduction="none")(recon, x).reshape(x.shape[0], -1).mean(1)
    return {"psnr_db": psnr, "ssim": ssim, "ms_ssim": ms}


def ms_ssim_note(ms: dict, ssim_window_px: int) -> str | None:
    """What the MS-SSIM column is when the images are too small for the standard 5 scales (None when
    they are not): the scales and window used, and, with 1 scale, that it is SSIM."""
    if ms.get("standard_ms_ssim"):
        return None
    n, k, side = int(ms["scales"]), int(ms["kernel_size"]), int(ms["smallest_side_px"])
    why = (f"the smallest image side is {side} px; the standard MS-SSIM (5 scales, 11 px window) needs 176 px"
           if ms.get("chosen") == "automatic" else "set by evaluate.ms_ssim_kernel_size / evaluate.ms_ssim_weights")
    if n == 1:
        same = " (the same as the SSIM column)" if k == ssim_window_px else ""
        return (f"MS-SSIM fell back to a single scale ({k} px window; {why}): it is plain SSIM{same}, not a "
                f"multi-scale score")
    return (f"MS-SSIM used {n} of the standard 5 scales ({k} px window, the first {n} standard weights "
            f"renormalised; {why}); not comparable with 5-scale MS-SSIM values")


def _member_matrix(labels: np.ndarray, num_classes: int, multi_label: bool) -> np.ndarray:
    """(N, K) bool: image i counts for class c."""
    if multi_label:
        return np.asarray(labels) > 0.5
    m = np.zeros((len(labels), num_classes), dtype=bool)
    m[np.arange(len(labels)), np.asarray(labels, dtype=np.int64).reshape(-1)] = True
    return m


def _nanmean(v) -> float | None:
    v = [x for x in v if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else None


def _side_by_side(x: torch.Tensor, recon: torch.Tensor):
    from medlt.diffusion.images import contact_sheet

    diff = (recon - x).abs() - 1.0  # |difference| in [0, 2] shown on the [-1, 1] display scale
    return contact_sheet(torch.stack([x, recon, diff.clamp(-1, 1)]), columns=3)


def evaluate_autoencoder(recipe, autoencoder: str | Path, out_dir: str | Path, *, dataset=None,
                         train_counts: Sequence[int] | None = None, device: str = "cpu",
                         role: str = "test") -> dict:
    """Write DIR/report.json, report.md and worst/; returns the report. `dataset` and
    `train_counts` override the recipe's test split and training counts (tests)."""
    from medlt.autoencoder.model import autoencoder_image_sizes
    from medlt.cliutils import progress
    from medlt.diffusion.images import save_png
    from medlt.metrics.diversity import ms_ssim_settings

    out = Path(out_dir)
    ae = load_autoencoder(autoencoder, device)
    sizes = autoencoder_image_sizes(recipe)
    if list(sizes) != list(ae.image_size):
        raise RecipeError(f"recipe key 'data.image_size': gives {sizes}, but the autoencoder {ae.path} was "
                          f"trained on {ae.image_size}")
    split = getattr(recipe.data.splits, role)
    if dataset is None:
        from medlt.data.loaders import build_dataset
        from medlt.data.table import load_table

        if split is None:
            raise RecipeError(f"recipe key 'data.splits.{role}': is null; evaluate-autoencoder needs a test split")
        table = load_table(recipe)
        train_counts = table.class_counts("train")
        dataset = build_dataset(recipe, role, augment=False)
    ls = dataset.label_space
    if train_counts is None:
        raise ValueError("train_counts is needed with an explicit dataset")
    groups = ls.groups(train_counts, tuple(recipe.data.group_thresholds))
    ms = ms_ssim_settings(sizes, recipe.evaluate.ms_ssim_kernel_size, recipe.evaluate.ms_ssim_weights)
    bs = recipe.autoencoder.evaluate.batch_size
    loader = DataLoader(dataset, batch_size=bs, shuffle=False, num_workers=recipe.data.num_workers)
    vals: dict[str, list[float]] = {k: [] for k in METRICS}
    ids: list[str] = []
    labels: list[np.ndarray] = []
    k_worst = recipe.autoencoder.evaluate.worst_per_class
    keep: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (x, recon), only candidates
    worst_psnr: dict[int, list[tuple[float, str]]] = {c: [] for c in range(ls.num_classes)}
    with torch.no_grad():
        for b in progress(loader, total=len(loader), desc="evaluate-autoencoder", unit="batch"):
            x = b["image"].float()
            recon = ae.model.reconstruct(x.to(ae.device)).float().cpu().clamp(-1, 1)
            m = reconstruction_metrics(x, recon, ms)
            lab = np.asarray(b["label"])
            member = _member_matrix(lab, ls.num_classes, ls.multi_label)
            for i, item_id in enumerate(b["id"]):
                ids.append(str(item_id))
                labels.append(lab[i])
                for k in METRICS:
                    vals[k].append(float(m[k][i]))
                p = float(m["psnr_db"][i])
                for c in np.flatnonzero(member[i]):
                    lst = worst_psnr[int(c)]
                    lst.append((p, str(item_id)))
                    lst.sort()
                    del lst[k_worst:]
                if any(str(item_id) in [w[1] for w in worst_psnr[int(c)]] for c in np.flatnonzero(member[i])):
                    keep[str(item_id)] = (x[i].clone(), recon[i].clone())
            wanted = {w[1] for lst in worst_psnr.values() for w in lst}
            keep = {k: v for k, v in keep.items() if k in wanted}
    if not ids:
        raise DataError(f"role '{role}' has no images")
    member = _member_matrix(np.stack(labels), ls.num_classes, ls.multi_label)
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in vals.items()}
    per_class = {k: {} for k in METRICS}
    n_per_class = {}
    for c, name in enumerate(ls.names):
        sel = member[:, c]
        n_per_class[name] = int(sel.sum())
        for k in METRICS:
            per_class[k][name] = float(arr[k][sel].mean()) if sel.any() else None
    per_group = {k: {g: _nanmean([per_class[k][n] for n, gg in zip(ls.names, groups, strict=True) if gg == g])
                     for g in ("head", "medium", "tail")} for k in METRICS}
    worst = {}
    for c, name in enumerate(ls.names):
        rows = []
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        for rank, (p, item_id) in enumerate(worst_psnr[c]):
            x, recon = keep[item_id]
            safe_id = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in item_id)
            rel = f"worst/{safe}/{rank:02d}_{safe_id}.png"
            save_png(out / rel, _side_by_side(x, recon), image_id=item_id, psnr_db=f"{p:.3f}",
                     content="input | reconstruction | |difference|")
            rows.append({"id": item_id, "psnr_db": p, "file": rel})
        worst[name] = rows
    report = {
        "kind": "autoencoder-reconstruction",
        "autoencoder": {"path": str(ae.path), "sha256": ae.sha256, "step": ae.step,
                        "scale_factor": ae.scale_factor, "latent_shape": list(ae.latent_shape)},
        "split": {"role": role, "name": split, "n_images": len(ids)},
        "definitions": {
            "psnr_db": "10*log10(2^2 / MSE) per image, model space [-1, 1] (MONAI PSNRMetric max_val=2)",
            "ssim": f"MONAI SSIMMetric, data_range 2, Gaussian window {ssim_window(sizes)} px sigma 1.5",
            "ms_ssim": "MONAI MultiScaleSSIMMetric, data_range 2, settings below (ms_ssim_note: fewer than the "
                       "standard 5 scales at this image size)",
            "per_class": "mean over the test images of the class (multi-label: positive for it)",
            "per_group": "mean over the group's classes of the per-class means",
            "reconstruction": "decode(posterior mean), EMA weights when trained with EMA",
        },
        "ms_ssim_settings": ms,
        "ms_ssim_note": ms_ssim_note(ms, ssim_window(sizes)),
        "overall": {k: float(arr[k].mean()) for k in METRICS},
        "per_class": per_class,
        "per_group": per_group,
        "n_per_class": n_per_class,
        "groups": dict(zip(ls.names, groups, strict=True)),
        "group_thresholds": list(recipe.data.group_thresholds),
        "worst": worst,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "report.md", render_markdown(report))
    return report


def _f(v, digits=3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def render_markdown(report: dict) -> str:
    names = list(report["groups"])
    lines = [
        "# Autoencoder reconstruction (per class)", "",
        f"Autoencoder `{report['autoencoder']['path']}` (sha256 {report['autoencoder']['sha256'][:12]}, step "
        f"{report['autoencoder']['step']}, latent {report['autoencoder']['latent_shape']}); split "
        f"`{report['split']['name']}` ({report['split']['n_images']} images). Model space [-1, 1]; "
        "PSNR in dB; SSIM and MS-SSIM (MONAI). Per class: mean over its test images; per group: mean "
        "over its classes.", "",
        "| class | group | n | PSNR (dB) | SSIM | MS-SSIM |", "|---|---|---:|---:|---:|---:|",
    ]
    pc = report["per_class"]
    for n in names:
        lines.append(f"| {n} | {report['groups'][n]} | {report['n_per_class'][n]} | {_f(pc['psnr_db'][n], 2)} | "
                     f"{_f(pc['ssim'][n])} | {_f(pc['ms_ssim'][n])} |")
    lines += ["", "| group | PSNR (dB) | SSIM | MS-SSIM |", "|---|---:|---:|---:|"]
    pg = report["per_group"]
    for g in ("head", "medium", "tail"):
        lines.append(f"| {g} | {_f(pg['psnr_db'][g], 2)} | {_f(pg['ssim'][g])} | {_f(pg['ms_ssim'][g])} |")
    o = report["overall"]
    lines += ["", f"All images: PSNR {_f(o['psnr_db'], 2)} dB, SSIM {_f(o['ssim'])}, MS-SSIM {_f(o['ms_ssim'])}."]
    if report.get("ms_ssim_note"):
        lines += ["", f"Note: {report['ms_ssim_note']}."]
    lines += ["", "Worst reconstructions (lowest PSNR) per class: input | reconstruction | |difference|.", ""]
    for n, rows in report["worst"].items():
        shown = ", ".join(f"[{r['id']}]({r['file']}) {r['psnr_db']:.2f} dB" for r in rows) or "–"
        lines.append(f"- {n}: {shown}")
    return "\n".join(lines) + "\n"
