"""Paired comparison of two evaluations on the same test images (`medlt report DIR1 DIR2`).

For every test role scored in both, the per-image predictions (DIR/predictions_<role>.csv) are
matched by image id; the two runs are resampled together (the same bootstrap resample of images
for both, stratified by class: medlt.metrics.bootstrap.paired_difference) and the difference
B − A of the headline metric and of each group's mean is reported with its percentile interval.
"significant" means the interval excludes 0; an interval containing 0 reads "not significant".
"""

from __future__ import annotations

import numpy as np

from medlt.classify.predictions import predictions_file, read_predictions
from medlt.data.labels import GROUPS, LabelSpace
from medlt.errors import DataError
from medlt.metrics.bootstrap import paired_difference


def aligned_predictions(dir_a, dir_b, role: str, label_space: LabelSpace) -> tuple[dict, dict]:
    """Both runs' predictions for `role`, B reordered to A's image order; DataError if the test
    images or their true labels differ."""
    pa = read_predictions(predictions_file(dir_a, role), label_space)
    pb = read_predictions(predictions_file(dir_b, role), label_space)
    ia, ib = pa["ids"], pb["ids"]
    if set(ia) != set(ib):
        only_a = sorted(set(ia) - set(ib))
        only_b = sorted(set(ib) - set(ia))
        example = f"'{only_a[0]}' only in {dir_a}" if only_a else f"'{only_b[0]}' only in {dir_b}"
        raise DataError(f"{dir_b}: role '{role}' was scored on other test images than {dir_a} ({len(ib)} vs "
                        f"{len(ia)} images, e.g. {example}); a paired comparison needs the same test set")
    pos = {i: k for k, i in enumerate(ib)}
    order = np.array([pos[i] for i in ia], dtype=np.int64)
    pb = {k: ([v[j] for j in order] if k == "ids" else v[order]) for k, v in pb.items()}
    if not np.array_equal(pa["true"], pb["true"]):
        bad = int(np.flatnonzero((pa["true"] != pb["true"]).reshape(len(ia), -1).any(1))[0])
        raise DataError(f"{dir_b}: role '{role}': image '{ia[bad]}' has another true label than in {dir_a}")
    return pa, pb


def paired_role(dir_a, dir_b, role: str, label_space: LabelSpace, groups, *, threshold: float = 0.5,
                n_resamples: int = 1000, seed: int = 0) -> dict:
    pa, pb = aligned_predictions(dir_a, dir_b, role, label_space)
    if label_space.multi_label:
        return paired_difference(pa["true"], pa["scores"], pb["scores"], groups, multi_label=True,
                                 threshold=threshold, n_resamples=n_resamples, seed=seed)
    return paired_difference(pa["true"], pa["predicted"], pb["predicted"], groups,
                             num_classes=label_space.num_classes, n_resamples=n_resamples, seed=seed)


def verdict(entry: dict | None) -> str:
    if entry is None or entry.get("interval") is None:
        return "n/a"
    return "significant" if entry["significant"] else "not significant (interval contains 0)"


#: fewest bootstrap resamples `medlt report` accepts: with fewer, the 2.5% and 97.5% percentiles rest
#: on one or two resamples each and the interval (and so the verdict) is noise
MIN_RESAMPLES = 100


def check_resamples(n_resamples: int) -> None:
    """DataError naming --bootstrap-resamples unless it is at least MIN_RESAMPLES."""
    if n_resamples < MIN_RESAMPLES:
        raise DataError(f"--bootstrap-resamples {n_resamples}: use at least {MIN_RESAMPLES} (a 95% percentile "
                        f"interval from fewer resamples is too coarse to call a difference significant; "
                        f"1000, the default, is recommended)")


def paired_blocks(dirs, reps: list[dict], *, n_resamples: int = 1000, seed: int = 0,
                  labels: list[str] | None = None) -> list[tuple]:
    """Each later run against the first: one table row per (role, metric). `labels`: the runs' names
    (default: medlt.report.labels.run_labels)."""
    if len(dirs) < 2:
        return []
    check_resamples(n_resamples)
    if labels is None:
        from medlt.report.labels import run_labels

        labels = run_labels(dirs)
    a_dir, a = dirs[0], reps[0]
    ls = LabelSpace(tuple(a["label_space"]["names"]), bool(a["label_space"]["multi_label"]))
    groups = a["groups"]
    threshold = float((a.get("recipe") or {}).get("classifier", {}).get("threshold", 0.5))
    if ls.multi_label:
        metrics = [("mean_per_class_balanced_accuracy_tpr_tnr", "mean per-class bAcc (TPR+TNR)/2"),
                   ("macro_auroc", "macro AUROC"), ("mean_average_precision", "mAP")]
        gkey, gname = "group_mean_balanced_accuracy_tpr_tnr", "bAcc (TPR+TNR)/2"
    else:
        metrics = [("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1")]
        gkey, gname = "group_mean_recall", "mean recall"
    a_lab = labels[0]
    blocks: list[tuple] = [("h", 2, f"Paired differences against {a_lab}")]
    rows, notes = [], []
    level = None
    for b_dir, b, b_lab in zip(dirs[1:], reps[1:], labels[1:], strict=True):
        if b["groups"] != groups:
            notes.append(f"{b_lab}: head/medium/tail groups differ from {a_lab}'s; the groups of {a_lab} are used.")
        for role, m in a["classification"].items():
            mb = b["classification"].get(role, {})
            if "skipped" in m or "skipped" in mb or not mb:
                continue
            missing = [d for d in (a_dir, b_dir) if not predictions_file(d, role).is_file()]
            if missing:
                notes.append(f"role {role}: no paired comparison, {missing[0]} has no {predictions_file('.', role).name} "
                             f"(re-run `medlt evaluate`).")
                continue
            d = paired_role(a_dir, b_dir, role, ls, groups, threshold=threshold, n_resamples=n_resamples, seed=seed)
            level = d["level"]
            entries = [(label, d[key]) for key, label in metrics]
            entries += [(f"{g} {gname}", d[gkey][g]) for g in GROUPS]
            for label, e in entries:
                if e is None:
                    continue
                rows.append([b_lab, f"{role} ({m.get('split', role)})", label, e["a"], e["b"],
                             e["difference"], _iv(e["interval"]), verdict(e)])
    if rows:
        blocks.append(("p", f"B − A on the same test images (matched by image id), {int(level * 100)}% paired "
                            f"percentile bootstrap interval, stratified by class, B = {n_resamples} resamples, "
                            f"seed {seed}. A = {a_lab}."))
        blocks.append(("table", ["run B", "role", "metric", "A", "B", "B − A", "95% CI of B − A", "verdict"], rows))
    blocks += [("p", n) for n in notes]
    return blocks


def _iv(iv) -> str:
    return "–" if iv is None else f"[{iv[0]:+.3f}, {iv[1]:+.3f}]"
