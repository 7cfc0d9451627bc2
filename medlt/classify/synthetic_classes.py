"""`medlt evaluate`'s class checks of a synthetic set: class fidelity (always, when a reference
classifier is available) and CAS (with --cas). Called from medlt.classify.evaluation.evaluate.

Reference classifier: `--reference-classifier PATH` if given; else the evaluated classifier when
it was trained on real images only; else class fidelity is reported as skipped, with the reason
(a classifier that saw synthetic images would judge them by what it learned from them). Its own
score per class on the real test images is reported beside each class's fidelity as its ceiling:
single-label, its recall (classes it recalls below evaluate.judge_min_real_recall are named and kept
out of the fidelity means); multi-label, where fidelity is a threshold-free AUROC, its real AUROC
(classes it ranks at or below chance, AUROC <= 0.5, are named and kept out; judge_min_real_recall,
a recall at classifier.threshold, plays no part there).
`reference_source` says where the judge came from (default "--reference-classifier"; `medlt bench`
names its oracle or its real-data judge).
"""

from __future__ import annotations

from pathlib import Path

from medlt.errors import DataError
from medlt.recipe import Recipe

FIDELITY_DEFINITION = ("share of the synthetic images of class c that the reference classifier assigns to c "
                       "(GAN-test, Shmelkov et al. 2018); multi-label: per-class AUROC of the intended label over "
                       "the synthetic set and the share of intended labels predicted positive")


def synthetic_class_checks(recipe: Recipe, result: dict, table, groups: list[str], synthetic_dir: Path,
                           out_dir: Path, *, classifier_run, reference_classifier=None, cas: bool = False,
                           device: str = "cpu", show_progress: bool = False,
                           reference_source: str | None = None) -> dict:
    """{"class_fidelity": ..., "cas": ...} for report.json's generation section."""
    from medlt.classify.reference import (
        class_fidelity_of_synthetic,
        load_reference,
        reference_record,
        reference_test_scores,
    )
    from medlt.metrics.fidelity import mark_judge_real_auroc, mark_judge_recall

    ls = table.label_space
    out: dict = {}
    if reference_classifier is not None:
        ref = load_reference(reference_classifier, recipe, ls, device)
        source = reference_source or "--reference-classifier"
    elif result["classifier"]["train_source"] == "real":
        ref = load_reference(classifier_run, recipe, ls, device)
        source = "the evaluated classifier"
    else:
        ref = None
        out["class_fidelity"] = {"skipped": "the evaluated classifier saw synthetic images; pass "
                                            "--reference-classifier REAL_ONLY_RUN (or a `medlt oracle` run on phantoms)"}
    if ref is not None:
        fid = class_fidelity_of_synthetic(recipe, synthetic_dir, ref, groups, batch_size=recipe.evaluate.batch_size,
                                          show_progress=show_progress)
        record = reference_record(ref, source)
        try:  # how far to trust the judge: its own real test scores, per class the ceiling of fidelity
            record["real_test"] = reference_test_scores(recipe, ref, groups, "test")
        except DataError as e:
            record["real_test"] = {"skipped": str(e)}
        if ls.multi_label:  # the ceiling of a threshold-free AUROC is the judge's real AUROC
            auroc = record["real_test"].get("per_class_auroc")
            if auroc is not None:
                fid = mark_judge_real_auroc(fid, dict(zip(ls.names, auroc, strict=True)), ls.names, groups)
        else:
            recall = record["real_test"].get("per_class_recall")
            if recall is not None:
                fid = mark_judge_recall(fid, dict(zip(ls.names, recall, strict=True)), ls.names, groups,
                                        recipe.evaluate.judge_min_real_recall)
        out["class_fidelity"] = {"definition": FIDELITY_DEFINITION, "reference_classifier": record, **fid}
    if cas:
        from medlt.classify.cas import classification_accuracy_score

        out["cas"] = classification_accuracy_score(recipe, synthetic_dir, out_dir / "cas_classifier", groups,
                                                   device=device, show_progress=show_progress)
    return out
