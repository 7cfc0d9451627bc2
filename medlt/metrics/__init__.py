"""Evaluation metrics (docs/evaluation.md): classification, Fréchet/KID feature distances, diversity,
memorization. Heavy imports (sklearn, torchmetrics, monai) load on first use."""

from __future__ import annotations

_EXPORTS = {
    "balanced_accuracy": "classification", "per_class_recall": "classification",
    "group_mean_recall": "classification", "macro_f1": "classification",
    "matthews_corrcoef": "classification", "confusion_matrix": "classification",
    "single_label_report": "classification", "multi_label_report": "classification",
    "per_class_balanced_accuracy_tpr_tnr": "classification",
    "mean_per_class_balanced_accuracy_tpr_tnr": "classification",
    "per_class_auroc": "classification", "macro_auroc": "classification",
    "per_class_average_precision": "classification", "mean_average_precision": "classification",
    "SingleLabelAccumulator": "classification", "MultiLabelAccumulator": "classification",
    "frechet_distance": "frechet", "RunningMoments": "frechet",
    "frechet_distance_from_running": "frechet", "frechet_distance_from_moments": "frechet",
    "mixture_moments": "frechet", "frechet_distance_from_factors": "frechet",
    "kernel_inception_distance": "kid", "FeatureReservoir": "kid", "weighted_mmd2_unbiased": "kid",
    "ClassFeatureStats": "feature_stats",
    "nearest_neighbours": "nearest",
    "MemorizationAccumulator": "memorization",
    "ClassDiversity": "diversity", "ms_ssim_settings": "diversity",
    "volume_slices": "slices", "slice_indices": "slices",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"medlt.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
