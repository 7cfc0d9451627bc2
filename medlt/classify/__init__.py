"""Downstream classifier (docs/evaluation.md): MONAI DenseNet121/ResNet, long-tail baselines, evaluation.

Public: `load_classifier(run_or_checkpoint, device="cpu")` -> Classifier (.label_space,
.predict_proba, .features); `fit_classifier`, `ClassifierData` (medlt.classify.train).
"""

from __future__ import annotations


def load_classifier(run_or_checkpoint, device="cpu"):
    from medlt.classify.load import load_classifier as _load

    return _load(run_or_checkpoint, device)


def __getattr__(name: str):
    if name in ("fit_classifier", "ClassifierData", "predict"):
        from medlt.classify import train

        return getattr(train, name)
    if name == "Classifier":
        from medlt.classify.load import Classifier

        return Classifier
    raise AttributeError(name)
