"""Write an evaluation: DIR/report.json (every number + recipe and checkpoint hashes),
DIR/report.md (+ DIR/figures/*.png) and a self-contained DIR/report.html. All writes atomic."""

from __future__ import annotations

import json
import math
from pathlib import Path

from medlt.report import figures
from medlt.report.document import to_html, to_markdown
from medlt.utils.atomic import atomic_write_bytes, atomic_write_text


def json_safe(obj):
    """NaN/inf -> None (strict JSON), tuples -> lists, Paths -> str."""
    if isinstance(obj, float):
        return None if (math.isnan(obj) or math.isinf(obj)) else obj
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return json_safe(obj.item())
    return obj


def _g(d, *keys):
    for k in keys:
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d


def role_title(role: str, metrics: dict) -> str:
    """Recipe role plus the official split playing it, e.g. "test (balanced-test)"."""
    split = metrics.get("split")
    return f"{role} ({split})" if split else role


def ci_text(interval) -> str:
    """A [low, high] interval as "[0.312, 0.405]"; "–" when absent."""
    if not interval:
        return "–"
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def ci_blocks(cls: dict, multi: bool) -> list[tuple]:
    """The classification intervals (medlt.metrics.bootstrap) of every scored role, in one table."""
    scored = {r: m for r, m in cls.items() if "confidence_intervals" in m}
    if not scored:
        return [("p", "No confidence intervals (evaluate.bootstrap_resamples is 0).")] if cls else []
    about = next(iter(scored.values()))["confidence_intervals"]
    if multi:
        keys = [("mean_per_class_balanced_accuracy_tpr_tnr", "mean per-class bAcc"), ("macro_auroc", "macro AUROC"),
                ("mean_average_precision", "mAP")]
        gkey = "group_mean_balanced_accuracy_tpr_tnr"
    else:
        keys = [("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1")]
        gkey = "group_mean_recall"
    headers = ["role"] + [k[1] for k in keys] + ["head", "medium", "tail"]
    rows = [[role_title(r, m)] + [ci_text(m["confidence_intervals"].get(k)) for k, _ in keys]
            + [ci_text(_g(m["confidence_intervals"], gkey, g)) for g in ("head", "medium", "tail")]
            for r, m in scored.items()]
    return [("p", f"{int(about['level'] * 100)}% confidence intervals: {about['method']} over the test images, "
                  f"B = {about['n_resamples']} resamples (seeded)."), ("table", headers, rows)]


def build_blocks(result: dict, assets: dict) -> list[tuple]:
    names = result["label_space"]["names"]
    multi = result["label_space"]["multi_label"]
    counts, groups = result["train_class_counts"], result["groups"]
    clf = result["classifier"]
    b: list[tuple] = [("h", 1, f"medlt evaluation: {result['recipe_name']}")]
    b.append(("p", f"Classifier `{clf['architecture']}` ({clf['method']}), trained on {clf['train_source']} data; "
                   f"checkpoint sha256 `{clf['checkpoint_sha256'][:16]}…`; recipe sha256 "
                   f"`{result['recipe_sha256'][:16]}…`; created {result['created_utc']}."))
    low, high = result["group_thresholds"]
    b.append(("p", f"Groups from the real training counts: head > {high}, medium {low}–{high}, tail < {low} images."))
    b.append(("img", "class_counts.png", figures.class_counts_png(names, counts, groups), "Training class counts"))
    skipped = result.get("skipped_images") or {}
    if any(skipped.values()):
        b.append(("p", "Images left out as unreadable (data.on_bad_image=skip; lists in each run's "
                       "skipped_images.csv): " + ", ".join(f"{k} {v}" for k, v in skipped.items()) + "."))

    b.append(("h", 2, "Classification"))
    cls = result["classification"]
    if multi:
        headers = ["role", "n", "mean per-class bAcc (TPR+TNR)/2", "95% CI", "head", "medium", "tail", "macro AUROC",
                   "mAP"]
        rows = [[role_title(r, m), m.get("n"), m.get("mean_per_class_balanced_accuracy_tpr_tnr"),
                 ci_text(_g(m, "confidence_intervals", "mean_per_class_balanced_accuracy_tpr_tnr")),
                 *[_g(m, "group_mean_balanced_accuracy_tpr_tnr", g) for g in ("head", "medium", "tail")],
                 m.get("macro_auroc"), m.get("mean_average_precision")] for r, m in cls.items() if "skipped" not in m]
    else:
        headers = ["role", "n", "balanced accuracy (mean recall)", "95% CI", "head", "medium", "tail", "macro-F1", "MCC"]
        rows = [[role_title(r, m), m.get("n"), m.get("balanced_accuracy"),
                 ci_text(_g(m, "confidence_intervals", "balanced_accuracy")),
                 *[_g(m, "group_mean_recall", g) for g in ("head", "medium", "tail")],
                 m.get("macro_f1"), m.get("mcc")] for r, m in cls.items() if "skipped" not in m]
    b.append(("table", headers, rows))
    b += ci_blocks(cls, multi)
    for r, m in cls.items():
        if "skipped" in m:
            b.append(("p", f"Role {r} skipped: {m['skipped']}."))
    for r, m in cls.items():
        if "skipped" in m:
            continue
        title = role_title(r, m)
        b.append(("h", 3, f"Per class, {title}"))
        if multi:
            ivs = _g(m, "confidence_intervals", "per_class_balanced_accuracy_tpr_tnr") or [None] * len(names)
            b.append(("table", ["class", "group", "train images", "bAcc (TPR+TNR)/2", "95% CI", "AUROC", "AP"],
                      [[n, g, c, x, ci_text(iv), y, z] for n, g, c, x, iv, y, z in zip(
                          names, groups, counts, m["per_class_balanced_accuracy_tpr_tnr"], ivs, m["per_class_auroc"],
                          m["per_class_average_precision"], strict=True)]))
        else:
            ivs = _g(m, "confidence_intervals", "per_class_recall") or [None] * len(names)
            b.append(("table", ["class", "group", "train images", "recall", "95% CI"],
                      [[n, g, c, x, ci_text(iv)] for n, g, c, x, iv in zip(names, groups, counts, m["per_class_recall"],
                                                                           ivs, strict=True)]))
            b.append(("img", f"recall_{r}.png", figures.per_class_bars_png(
                names, {clf["train_source"]: m["per_class_recall"]}, ylabel="recall",
                title=f"Per-class recall, {title}"), f"Per-class recall, {title}"))
            b.append(("img", f"confusion_{r}.png", figures.confusion_matrix_png(
                m["confusion_matrix"], names, f"Confusion matrix, {title}"), f"Confusion matrix, {title}"))

    from medlt.report.generation_sections import generation_blocks  # FID/KID, 2.5D, diversity, memorization

    b += generation_blocks(result, assets)
    from medlt.report.class_sections import class_check_blocks  # class fidelity, CAS

    b += class_check_blocks(result)
    return b


def figures_fmt(v) -> str:
    from medlt.report.document import fmt

    return fmt(v)


def write_report(out_dir: str | Path, result: dict, assets: dict | None = None) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    assets = {**(assets or {}), "out_dir": out}
    safe = json_safe(result)
    paths = {"json": atomic_write_text(out / "report.json", json.dumps(safe, indent=1, allow_nan=False))}
    blocks = build_blocks(safe, assets)
    for blk in blocks:
        if blk[0] == "img":
            atomic_write_bytes(out / "figures" / blk[1], blk[2])
    paths["md"] = atomic_write_text(out / "report.md", to_markdown(blocks))
    paths["html"] = atomic_write_text(out / "report.html", to_html(blocks, f"medlt evaluation: {result['recipe_name']}"))
    return paths
