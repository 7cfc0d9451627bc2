"""`medlt report DIR1 DIR2 ...`: several evaluations (report.json) in one table, plus a per-class
recall comparison (e.g. real-only vs real+synthetic) in the optional HTML."""

from __future__ import annotations

import json
from pathlib import Path

from medlt.errors import DataError
from medlt.report import figures
from medlt.report.document import to_html, to_markdown
from medlt.report.write import _g, ci_text, role_title

#: what `medlt report` reads from each report.json (a `medlt evaluate` output)
REQUIRED = {"label_space": dict, "classification": dict, "classifier": dict, "groups": list}
#: top-level "kind" of other medlt outputs -> the verb that wrote them
OTHER_KINDS = {"autoencoder-reconstruction": "`medlt evaluate-autoencoder`"}


def load_report(d: str | Path) -> dict:
    """The report.json of a `medlt evaluate` output folder (or the file itself); DataError naming the
    path when it is missing, not JSON, or another kind of file."""
    p = Path(d)
    if p.is_dir() and (p / "bench.json").is_file() and not (p / "report.json").is_file():
        raise DataError(f"{p}: a `medlt bench` folder, not a `medlt evaluate` output; compare its cells' "
                        f"eval/ folders (e.g. {p / 'real' / 'c0' / 'eval'})")
    p = p / "report.json" if p.is_dir() else p
    if not p.is_file():
        raise DataError(f"{p}: no report.json (run `medlt evaluate ... --out DIR` first)")
    try:
        rep = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise DataError(f"{p}: not a text file, so not a `medlt evaluate` report.json") from None
    _check_report(rep, p)
    return rep


def _check_report(rep, p: Path) -> None:
    """DataError (one line naming `p` and what it is instead) unless `rep` is a `medlt evaluate` report."""
    if not isinstance(rep, dict):
        raise DataError(f"{p}: not a `medlt evaluate` report (the JSON is a {type(rep).__name__}, not an object)")
    if "rows" in rep and "cells" in rep and "settings" in rep:
        what = "a `medlt bench` table (bench.json); compare the cells' eval/ folders instead"
    elif rep.get("kind") in OTHER_KINDS:
        what = f"a {OTHER_KINDS[rep['kind']]} report"
    else:
        what = None
    missing = [k for k, t in REQUIRED.items() if not isinstance(rep.get(k), t)]
    if not missing and not isinstance(rep["label_space"].get("names"), list):
        missing = ["label_space.names"]
    if what or missing:
        what = what or f"no {', '.join(repr(k) for k in missing)}"
        raise DataError(f"{p}: not a `medlt evaluate` report ({what}); `medlt report` compares the folders "
                        f"written by `medlt evaluate --out DIR`")


def check_comparable(dirs, reps: list[dict], labels: list[str]) -> None:
    """DataError unless every run has the first run's label mode and classes."""
    ls0 = reps[0]["label_space"]
    mode = {True: "multi-label", False: "single-label"}
    for d, r, lab in zip(dirs[1:], reps[1:], labels[1:], strict=True):
        ls = r["label_space"]
        if bool(ls.get("multi_label")) != bool(ls0.get("multi_label")):
            raise DataError(f"{d}: {lab} is a {mode[bool(ls.get('multi_label'))]} evaluation and {labels[0]} "
                            f"({dirs[0]}) a {mode[bool(ls0.get('multi_label'))]} one; they use different "
                            f"metrics and test labels, so they cannot be compared")
        if ls["names"] != ls0["names"]:
            raise DataError(f"{d}: classes differ from {dirs[0]}'s; runs on different label spaces can't be compared")


def comparison_blocks(dirs: list[str | Path], *, bootstrap_resamples: int = 1000, seed: int = 0) -> list[tuple]:
    """The comparison table, per-class recall plots, and (2+ runs) the paired bootstrap differences of
    every run against the first (medlt.report.paired)."""
    from medlt.report.labels import run_labels
    from medlt.report.paired import check_resamples

    check_resamples(bootstrap_resamples)
    reps = [load_report(d) for d in dirs]
    labels = run_labels(dirs)
    check_comparable(dirs, reps, labels)
    names = reps[0]["label_space"]["names"]
    multi = reps[0]["label_space"]["multi_label"]
    key = "mean_per_class_balanced_accuracy_tpr_tnr" if multi else "balanced_accuracy"
    gkey = "group_mean_balanced_accuracy_tpr_tnr" if multi else "group_mean_recall"
    extra = ("macro_auroc", "mean_average_precision") if multi else ("macro_f1", "mcc")
    pretty = {"macro_f1": "macro-F1", "mcc": "MCC", "macro_auroc": "macro AUROC", "mean_average_precision": "mAP"}
    headers = ["run", "trained on", "method", "role", "bAcc" + (" (TPR+TNR)/2" if multi else " (mean recall)"),
               "95% CI", "head", "medium", "tail", *[pretty[e] for e in extra], "FID overall (class-matched)", "feature extractor"]
    rows = []
    for lab, r in zip(labels, reps, strict=True):
        gen = r.get("generation") or {}
        for role, m in r["classification"].items():
            if "skipped" in m:
                continue
            rows.append([lab, r["classifier"]["train_source"], r["classifier"]["method"],
                         role_title(role, m), m.get(key), ci_text(_g(m, "confidence_intervals", key)),
                         *[_g(m, gkey, g) for g in ("head", "medium", "tail")],
                         *[m.get(e) for e in extra], _g(gen, "by_extractor", gen.get("feature_extractor"), "fid_kid", "scopes", "overall", "fid"),
                         gen.get("feature_extractor", "–")])
    blocks = [("h", 1, "medlt run comparison"), ("table", headers, rows)]
    if not multi:
        for role in ("test", "test_longtail"):
            series = {f"{lab} ({r['classifier']['train_source']})": r["classification"][role]["per_class_recall"]
                      for lab, r in zip(labels, reps, strict=True) if "per_class_recall" in r["classification"].get(role, {})}
            if series:
                first = next(r["classification"][role] for r in reps if role in r["classification"])
                title = f"Per-class recall, {role_title(role, first)}"
                blocks.append(("img", f"compare_recall_{role}.png",
                               figures.per_class_bars_png(names, series, ylabel="recall", title=title), title))
    from medlt.report.paired import paired_blocks

    blocks += paired_blocks(dirs, reps, n_resamples=bootstrap_resamples, seed=seed, labels=labels)
    return blocks


def compare_markdown(dirs, **kw) -> str:
    return to_markdown([b for b in comparison_blocks(dirs, **kw) if b[0] != "img"])


def compare_html(dirs, **kw) -> str:
    return to_html(comparison_blocks(dirs, **kw), "medlt run comparison")
