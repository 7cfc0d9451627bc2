"""Balanced phantoms (`medlt phantom --per-class N`): the same generator with imbalance ratio 1.

With r = 1 the long-tail formula n_c = n_max * r ** (c / (C - 1)) gives n_c = n_max for every
class, so a balanced set is the long-tailed writer with
- CXR layouts: num_images = N * C training images -> exactly N per class (single-label: N images
  of class c; NIH multi-label: N images whose primary finding is c, some carry extra findings);
  the long-tailed `test` split gets `per_class_test` images per class (test_fraction =
  per_class_test / N) instead of a quarter of the training set, to keep the set cheap;
- CT-RATE: num_images = 2 N training scans (n_max is half the scans) -> every class is positive
  in exactly N scans (multi-label, independently per class).

Used for the phantom oracle (medlt.classify.oracle): a reference classifier trained on many
images per class from a seed other than the evaluated phantom's.
"""

from __future__ import annotations

from medlt.errors import DataError


def balanced_options(layout: str, per_class: int, *, num_images: int | None,
                     per_class_test: int) -> tuple[int, float, float]:
    """(num_images, imbalance_ratio, test_fraction) that make `layout` write `per_class` training
    images (CT-RATE: positive scans) per class."""
    from medlt.data.labels import official_classes

    if num_images is not None:
        raise DataError("--per-class and --num-images exclude each other (--per-class N writes N training "
                        "images per class)")
    n = int(per_class)
    if n < 1:
        raise DataError(f"--per-class must be >= 1, got {per_class}")
    if layout == "ct-rate":
        return 2 * n, 1.0, 0.25
    num_classes = len(official_classes(layout))
    return n * num_classes, 1.0, min(1.0, per_class_test / n)
