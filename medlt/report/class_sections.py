"""Report sections for the class checks of a synthetic set: class fidelity and CAS
(report.json generation.class_fidelity / generation.cas; definitions in docs/evaluation.md)."""

from __future__ import annotations

from medlt.data.labels import GROUPS
from medlt.report import figures
from medlt.report.document import fmt


def _ci(pair) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return "–"
    return f"{fmt(pair[0], 3)}–{fmt(pair[1], 3)}"


def _reference_line(ref: dict) -> str:
    line = f"Reference classifier `{ref['name']}` ({ref['source']}; trained on {ref['trained_on']})."
    if ref.get("oracle"):
        o = ref["oracle"]
        line += (f" Phantom oracle: {o.get('per_class', '?')} images per class of a balanced phantom, seed "
                 f"{o.get('phantom_seed', '?')} (the evaluated phantom's seed: {o.get('evaluated_phantom_seed', '?')}).")
    t = ref.get("real_test")
    if t and "skipped" not in t:
        key = "balanced_accuracy" if "balanced_accuracy" in t else "mean_per_class_balanced_accuracy_tpr_tnr"
        line += f" Its own {key} on the real {t['split']} split: {fmt(t[key])}."
    return line


def _judge_ceiling(fid: dict) -> tuple[str | None, str]:
    """(per-class key, column title) of the judge's ceiling recorded beside each class's fidelity."""
    key = fid.get("judge_ceiling")
    if key is None and any("judge_real_recall" in v for v in fid["per_class"].values()):
        key = "judge_real_recall"
    return key, {"judge_real_auroc": "judge real AUROC", "judge_real_recall": "judge recall on real"}.get(key, "")


def _judge_note(fid: dict) -> list[tuple]:
    key, _ = _judge_ceiling(fid)
    if key is None:
        return []
    bad = fid.get("classes_judge_cannot_recognise") or []
    rule = ("its AUROC on the real test images, the ceiling of a class's fidelity AUROC; classes at or below "
            "chance (0.5)" if key == "judge_real_auroc" else
            f"its recall on the real test images, the ceiling of a class's fidelity; classes below "
            f"{fmt(fid.get('judge_min_real_recall'))}")
    return [("p", f"How far to trust the judge per class: {rule} (" + (", ".join(bad) if bad else "none")
                  + ") are marked \"judge cannot recognise this class\" and kept out of the means.")]


def class_fidelity_blocks(result: dict) -> list[tuple]:
    gen = result.get("generation") or {}
    fid = gen.get("class_fidelity")
    if not fid:
        return []
    b: list[tuple] = [("h", 3, "Class fidelity (does an image of class c show c?)")]
    if "skipped" in fid:
        return b + [("p", f"Skipped: {fid['skipped']}.")]
    names = result["label_space"]["names"]
    counts = result["train_class_counts"]
    b.append(("p", f"Definition: {fid['definition']}. {_reference_line(fid['reference_classifier'])} "
                   f"{fid['n_synthetic']} synthetic images; 95% intervals: Wilson (shares)"
                   f"{', Hanley–McNeil (AUROC)' if fid['mode'] == 'multi-label' else ''}."))
    pc = fid["per_class"]
    jkey, jtitle = _judge_ceiling(fid)
    jcol = [jtitle] if jkey else []

    def judge(n):
        return [pc[n].get(jkey)] if jkey else []
    b.extend(_judge_note(fid))
    if fid["mode"] == "single-label":
        b.append(("p", f"Mean class fidelity {fmt(fid['mean_class_fidelity'])} (pooled share "
                       f"{fmt(fid['share_assigned_to_intended_pooled'])})."))
        rows = []
        for n, c in zip(names, counts, strict=True):
            v = pc[n]
            other = v["most_assigned_other"]
            rows.append([n, v["group"], c, v["n_synthetic"], v["fidelity"], _ci(v["ci95"]), *judge(n),
                         f"{other['class']} ({fmt(other['share'], 3)})" if other else "–"])
        b.append(("table", ["class", "group", "real train images", "synthetic", "fidelity", "95% CI", *jcol,
                            "most often assigned instead"], rows))
        share = fid["assigned_group_share"]
        b.append(("table", ["intended group", "mean fidelity", *[f"share assigned to {g}" for g in GROUPS]],
                  [[g, fid["group_mean_fidelity"][g], *[share[g][h] for h in GROUPS]] for g in GROUPS]))
        b.append(("img", "class_fidelity.png", figures.per_class_bars_png(
            names, {"fidelity": [pc[n]["fidelity"] for n in names]}, ylabel="fidelity",
            title="Class fidelity per class"), "Class fidelity per class"))
        b.append(("img", "class_fidelity_confusion.png", figures.confusion_matrix_png(
            fid["confusion_intended_x_assigned"], names,
            "Synthetic images: intended class (rows) x reference's class (columns)"),
            "Where the synthetic images of each class were assigned"))
    else:
        b.append(("p", f"Mean AUROC {fmt(fid['mean_auroc'])}; mean share of intended labels predicted positive "
                       f"(p ≥ {fmt(fid['threshold'])}) {fmt(fid['mean_share_intended_predicted_positive'])}."))
        b.append(("table", ["class", "group", "real train images", "synthetic with label", "AUROC", "95% CI", *jcol,
                            "share predicted positive", "95% CI"],
                  [[n, pc[n]["group"], c, pc[n]["n_intended"], pc[n]["auroc"], _ci(pc[n]["auroc_ci95"]), *judge(n),
                    pc[n]["share_intended_predicted_positive"], _ci(pc[n]["ci95"])]
                   for n, c in zip(names, counts, strict=True)]))
        b.append(("table", ["group", "mean AUROC", "mean share predicted positive"],
                  [[g, fid["group_mean_auroc"][g], fid["group_mean_share_intended_predicted_positive"][g]]
                   for g in GROUPS]))
    return b


def cas_blocks(result: dict) -> list[tuple]:
    cas = (result.get("generation") or {}).get("cas")
    if not cas:
        return []
    names = result["label_space"]["names"]
    groups = result["groups"]
    real = result.get("classification", {}).get(cas["test_role"], {})
    src = result["classifier"]["train_source"]
    b: list[tuple] = [("h", 3, "Classification Accuracy Score (CAS)"),
                      ("p", f"Definition: {cas['definition']} ({cas['test_split']}). Classifier `{cas['classifier']}` "
                            f"({cas['architecture']}, {cas['method']}, {cas['epochs_trained']} epochs, "
                            f"{cas['n_train_synthetic']} synthetic training images; model selection: "
                            f"{cas['model_selection']}). Beside it: the evaluated classifier (trained on {src}) on "
                            f"the same test images.")]
    if cas.get("warning"):
        b.append(("p", "Warning: " + cas["warning"]))
    if "balanced_accuracy" in cas:
        b.append(("table", ["scores on " + cas["test_split"], "balanced accuracy", *GROUPS, "macro-F1"],
                  [["CAS (train = synthetic only)", cas["balanced_accuracy"],
                    *[cas["group_mean_recall"][g] for g in GROUPS], cas["macro_f1"]],
                   [f"evaluated classifier (train = {src})", real.get("balanced_accuracy"),
                    *[(real.get("group_mean_recall") or {}).get(g) for g in GROUPS], real.get("macro_f1")]]))
        other = real.get("per_class_recall") or [None] * len(names)
        cis = cas.get("per_class_recall_ci95") or [None] * len(names)
        b.append(("table", ["class", "group", "synthetic train images", "CAS recall", "95% CI (Wilson)",
                            f"recall (train = {src})"],
                  [[n, g, k, r, _ci(ci), o] for n, g, k, r, ci, o in zip(
                      names, groups, cas["train_class_counts"], cas["per_class_recall"], cis, other, strict=True)]))
        b.append(("img", "cas_recall.png", figures.per_class_bars_png(
            names, {"CAS (synthetic only)": cas["per_class_recall"], f"train = {src}": other}, ylabel="recall",
            title=f"Per-class recall on {cas['test_split']}: trained on synthetic vs {src}"), "CAS per class"))
    else:
        key = "mean_per_class_balanced_accuracy_tpr_tnr"
        b.append(("table", ["scores on " + cas["test_split"], "mean per-class bAcc (TPR+TNR)/2", *GROUPS,
                            "macro AUROC", "mAP"],
                  [["CAS (train = synthetic only)", cas[key],
                    *[cas["group_mean_balanced_accuracy_tpr_tnr"][g] for g in GROUPS], cas["macro_auroc"],
                    cas["mean_average_precision"]],
                   [f"evaluated classifier (train = {src})", real.get(key),
                    *[(real.get("group_mean_balanced_accuracy_tpr_tnr") or {}).get(g) for g in GROUPS],
                    real.get("macro_auroc"), real.get("mean_average_precision")]]))
        b.append(("table", ["class", "group", "synthetic train positives", "CAS bAcc (TPR+TNR)/2", "CAS AUROC"],
                  [[n, g, k, x, y] for n, g, k, x, y in zip(names, groups, cas["train_class_counts"],
                                                            cas["per_class_balanced_accuracy_tpr_tnr"],
                                                            cas["per_class_auroc"], strict=True)]))
    return b


def class_check_blocks(result: dict) -> list[tuple]:
    return class_fidelity_blocks(result) + cas_blocks(result)
