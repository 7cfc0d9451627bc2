"""Classification Accuracy Score (CAS; Ravuri & Vinyals, NeurIPS 2019).

CAS = the test score of the recipe's classifier trained on *synthetic images only* (every row of
synth's manifest.csv, with the labels they were generated for), tested on the *real* test role
(balanced-test for the CXR phantoms), per class and head/medium/tail group. Single-label: balanced
accuracy (mean per-class recall) and per-class recall; multi-label: mean per-class (TPR+TNR)/2,
AUROC, AP. Compare it with the same classifier trained on real images (`medlt evaluate`'s
classification section): a generator that shows every class faithfully reaches a CAS close to it.

Training is `medlt classify`'s own (medlt.classify.train.fit_classifier with the recipe's
classifier: section, e.g. method / epochs / sampler); like every medlt classifier, the epoch kept
is chosen on the real val role, so the weights are fitted to synthetic images only but the choice
of epoch sees real validation images (say so when comparing with the paper's protocol).
The run lives in OUT/cas_classifier (resumable); it is bound to the synthetic manifest by its
sha256 (OUT/cas_classifier/cas_source.json), so a folder trained on another set is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from medlt.errors import DataError
from medlt.recipe import Recipe
from medlt.utils.atomic import atomic_write_text
from medlt.utils.checkpoint import file_sha256

DEFINITION = ("Classification Accuracy Score (Ravuri & Vinyals 2019): the recipe's classifier trained on "
              "the synthetic images only, tested on the real test split")


def absent_warning(absent: list[str], num_classes: int) -> str:
    """The one-line warning for classes with no synthetic training image (CAS then scores them as
    never learned, so it measures the set's class coverage as much as its fidelity)."""
    shown = ", ".join(absent[:8]) + (f", ... ({len(absent) - 8} more)" if len(absent) > 8 else "")
    return (f"{len(absent)} of {num_classes} classes have no synthetic image ({shown}); the CAS classifier never "
            f"saw them, so CAS is low for missing coverage, not only for poor images")


def _bind_run(run: Path, manifest: Path) -> None:
    """Refuse a CAS run folder trained on another synthetic manifest; record ours."""
    sha = file_sha256(manifest)
    src = run / "cas_source.json"
    if src.is_file():
        prev = json.loads(src.read_text()).get("manifest_sha256")
        if prev != sha:
            raise DataError(f"{run}: holds a CAS classifier trained on another synthetic set ({prev[:12]}… vs "
                            f"{manifest} {sha[:12]}…); remove that folder or use another --out")
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(src, json.dumps({"manifest": str(manifest.resolve()), "manifest_sha256": sha}, indent=1))


def classification_accuracy_score(recipe: Recipe, synthetic_dir: str | Path, run_dir: str | Path,
                                  groups: list[str], *, device: str = "cpu", show_progress: bool = False) -> dict:
    """Train on synth's manifest.csv only (run_dir), score on the real test role; JSON-safe dict."""
    from monai.data import DataLoader

    from medlt.classify.data import classifier_data, synthetic_recipe
    from medlt.classify.load import load_classifier
    from medlt.classify.reference import reference_name, reference_test_scores
    from medlt.classify.train import fit_classifier
    from medlt.data.loaders import build_dataset

    synthetic_dir, run = Path(synthetic_dir), Path(run_dir)
    manifest = synthetic_dir / "manifest.csv"
    if not manifest.is_file():
        raise DataError(f"--synthetic {synthetic_dir}: no manifest.csv (a `medlt synth` output folder)")
    data = classifier_data(synthetic_recipe(recipe, synthetic_dir))  # every role of it = the synthetic rows
    data.val = DataLoader(build_dataset(recipe, "val"), batch_size=recipe.classifier.per_rank_batch_size,
                          shuffle=False, num_workers=recipe.data.num_workers)  # epoch selection: real val
    n_syn, n_all = int(data.meta["train_synthetic_images"]), int(data.meta["train_images"])
    if n_syn != n_all:
        raise DataError(f"{manifest}: {n_all - n_syn} of its {n_all} training rows are not source=synthetic; CAS "
                        f"trains on synthetic images only (pass synth's manifest.csv, not merged.csv)")
    data.meta["reference_kind"] = "synthetic-only"
    _bind_run(run, manifest)
    summary = fit_classifier(recipe, data, run, show_progress=show_progress)
    clf = load_classifier(run, device)
    scores = reference_test_scores(recipe, clf, groups, "test")
    if "confusion_matrix" in scores:  # 95% Wilson interval of each class's recall (hits / test images)
        from medlt.metrics.fidelity import wilson_interval

        scores["per_class_recall_ci95"] = [list(wilson_interval(row[c], sum(row)))
                                           for c, row in enumerate(scores["confusion_matrix"])]
    counts = list(map(int, data.train_counts))
    absent = [n for n, k in zip(data.label_space.names, counts, strict=True) if k == 0]
    extra = {"absent_classes": absent}
    if absent:
        extra["warning"] = absent_warning(absent, len(counts))
    return {"definition": DEFINITION, "classifier": reference_name(clf), "run": str(run.resolve()),
            "checkpoint_sha256": clf.checkpoint_sha256, "architecture": recipe.classifier.architecture,
            "method": recipe.classifier.method, "epochs_trained": int(summary.get("epochs", 0)),
            "model_selection": f"{summary.get('selection_metric', 'val score')} on the real val role",
            "n_train_synthetic": n_syn, "train_class_counts": counts,
            "test_role": scores.pop("role"), "test_split": scores.pop("split"), **scores, **extra}
