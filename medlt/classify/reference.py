"""The reference classifier of class fidelity, named like a feature extractor.

A reference is any `medlt classify` run or checkpoint (also a `medlt oracle` run or a CAS run):
its name `classifier:{architecture}-{d}d[train={kind}]@{sha256[:12]}` says what it was trained on
(kind: real, real+synthetic, phantom-oracle, synthetic-only) and which file it is. It must know the
recipe's classes (same names, order and label mode) and read images of the recipe's size.

`class_fidelity_of_synthetic` runs the reference over a `medlt synth` folder and returns
medlt.metrics.fidelity's report; `reference_test_scores` scores the reference itself on the real
test role, so a reader sees how far to trust it (an inaccurate reference makes every fidelity low):
per class, its recall there (single-label) or its AUROC there (multi-label, where fidelity is a
threshold-free AUROC) is the ceiling of that class's fidelity (medlt.metrics.fidelity.
mark_judge_recall / mark_judge_real_auroc).
"""

from __future__ import annotations

from pathlib import Path

import torch

from medlt.classify.load import Classifier, load_classifier
from medlt.cliutils import progress
from medlt.data.labels import LabelSpace
from medlt.errors import DataError
from medlt.recipe import Recipe


def training_kind(clf: Classifier) -> str:
    """What the classifier's weights were trained on (recorded in its checkpoint's meta)."""
    if clf.meta.get("reference_kind"):
        return str(clf.meta["reference_kind"])
    return "real+synthetic" if clf.meta.get("train_manifest") else "real"


def reference_name(clf: Classifier) -> str:
    return (f"classifier:{clf.recipe.classifier.architecture}-{clf.spatial_dims}d[train={training_kind(clf)}]"
            f"@{clf.checkpoint_sha256[:12]}")


def load_reference(path: str | Path, recipe: Recipe, label_space: LabelSpace, device: str = "cpu") -> Classifier:
    """Load a reference classifier and check it fits the recipe (classes, label mode, image size)."""
    clf = load_classifier(path, device)
    if clf.label_space != label_space:
        raise DataError(f"reference classifier {clf.checkpoint_path} was trained on classes "
                        f"{list(clf.label_space.names)} (multi_label={clf.label_space.multi_label}); the recipe "
                        f"has {list(label_space.names)} (multi_label={label_space.multi_label})")
    want, got = list(recipe.data.image_size), list(clf.recipe.data.image_size)
    if want != got:
        raise DataError(f"reference classifier {clf.checkpoint_path} reads {got} images, the recipe's "
                        f"data.image_size is {want}")
    return clf


def reference_record(clf: Classifier, source: str) -> dict:
    return {"name": reference_name(clf), "checkpoint": str(clf.checkpoint_path.resolve()),
            "checkpoint_sha256": clf.checkpoint_sha256, "trained_on": training_kind(clf), "source": source,
            **({"oracle": {k[len("oracle_"):]: v for k, v in clf.meta.items() if k.startswith("oracle_")}}
               if training_kind(clf) == "phantom-oracle" else {})}


@torch.no_grad()
def synthetic_scores(recipe: Recipe, synthetic_dir: str | Path, reference: Classifier, *, batch_size: int,
                     show_progress: bool = False):
    """(intended labels, reference probabilities) of every image of synth's manifest.csv, in its order."""
    from torch.utils.data import DataLoader

    from medlt.classify.data import synthetic_recipe
    from medlt.data.loaders import build_dataset

    ds = build_dataset(synthetic_recipe(recipe, synthetic_dir), "train")
    for batch in progress(DataLoader(ds, batch_size=batch_size, shuffle=False), desc="class fidelity",
                          unit="batch", disable=not show_progress):
        yield torch.as_tensor(batch["label"]), reference.predict_proba(batch["image"])


def class_fidelity_of_synthetic(recipe: Recipe, synthetic_dir: str | Path, reference: Classifier,
                                groups: list[str], *, batch_size: int, show_progress: bool = False) -> dict:
    """medlt.metrics.fidelity report of the reference over every image of synth's manifest.csv."""
    from medlt.metrics.fidelity import ClassFidelityAccumulator

    ls = reference.label_space
    acc = ClassFidelityAccumulator(ls.names, groups, multi_label=ls.multi_label,
                                   threshold=recipe.classifier.threshold)
    for intended, probs in synthetic_scores(recipe, synthetic_dir, reference, batch_size=batch_size,
                                            show_progress=show_progress):
        acc.update(intended, probs)
    return acc.compute()


@torch.no_grad()
def reference_test_scores(recipe: Recipe, clf: Classifier, groups: list[str], role: str = "test") -> dict:
    """The classifier's own scores on the real `role` split (single: balanced accuracy and per-class
    recall; multi-label: mean per-class (TPR+TNR)/2, macro AUROC, mAP, per_class_auroc (the ceiling
    of class fidelity) and per_class_recall at classifier.threshold (for reference only))."""
    from medlt.classify.train import predict
    from medlt.data.loaders import build_dataloader
    from medlt.metrics.classification import multi_label_report, single_label_report

    split = getattr(recipe.data.splits, role, None)
    if split is None:
        raise DataError(f"data.splits.{role} is null: no real test split to score on")
    loader = build_dataloader(recipe, role, recipe.evaluate.batch_size, shuffle=False)
    t, p, _ = predict(clf.net, loader, clf.device, multi_label=clf.label_space.multi_label)
    if clf.label_space.multi_label:
        rep = multi_label_report(t.numpy(), p.numpy(), groups, recipe.classifier.threshold)
        pos = t.numpy() > 0.5
        hit = (p.numpy() >= recipe.classifier.threshold) & pos
        n_pos = pos.sum(axis=0)  # recall (TPR at the threshold) per class; NaN without a positive
        rep["per_class_recall"] = [float(h / n) if n else float("nan") for h, n in zip(hit.sum(axis=0), n_pos,
                                                                                         strict=True)]
    else:
        rep = single_label_report(t.numpy(), p.argmax(1).numpy(), clf.label_space.num_classes, groups)
    return {"role": role, "split": split, **rep}
