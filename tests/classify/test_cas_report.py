"""The class fidelity / CAS report sections render both label modes (pure: no training)."""

import numpy as np

from medlt.metrics.classification import multi_label_report, single_label_report
from medlt.metrics.fidelity import class_fidelity_multi_label, class_fidelity_single_label
from medlt.report.class_sections import class_check_blocks
from medlt.report.document import to_html, to_markdown
from medlt.report.write import json_safe

NAMES = ["A", "B", "C"]
GROUPS = ["head", "medium", "tail"]
REF = {"name": "classifier:resnet18-2d[train=phantom-oracle]@0123456789ab", "source": "--reference-classifier",
       "trained_on": "phantom-oracle", "oracle": {"per_class": "60", "phantom_seed": "1", "evaluated_phantom_seed": "0"},
       "real_test": {"split": "balanced-test", "balanced_accuracy": 0.91}}


def _result(multi: bool, fid: dict, cas: dict) -> dict:
    return json_safe({"label_space": {"names": NAMES, "multi_label": multi}, "train_class_counts": [50, 10, 2],
                      "groups": GROUPS, "classifier": {"train_source": "real"},
                      "classification": {"test": cas}, "generation": {
                          "class_fidelity": {"definition": "d", "reference_classifier": REF, **fid},
                          "cas": {"definition": "CAS", "classifier": "classifier:x[train=synthetic-only]@1",
                                  "architecture": "resnet18", "method": "erm", "epochs_trained": 2,
                                  "model_selection": "val", "n_train_synthetic": 30, "train_class_counts": [10, 10, 10],
                                  "test_role": "test", "test_split": "balanced-test", **cas}}})


def test_single_label_sections():
    fid = class_fidelity_single_label([0, 0, 1, 2, 2], [0, 1, 1, 0, 0], NAMES, GROUPS)
    cas = single_label_report(np.array([0, 1, 2, 2]), np.array([0, 1, 0, 2]), 3, GROUPS)
    md = to_markdown(class_check_blocks(_result(False, fid, cas)))
    assert "| C | tail | 2 | 2 | 0 | 0–0.658 | A (1) |" in md  # the tail class drifted to the head class
    assert "| tail | 0 | 1 | 0 | 0 |" in md
    assert "Phantom oracle: 60 images per class" in md and "on the real balanced-test split: 0.91" in md
    assert "| CAS (train = synthetic only) | 0.8333 |" in md
    assert "figures/class_fidelity_confusion.png" in md and "figures/cas_recall.png" in md


def test_multi_label_sections_and_nan():
    t = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])  # class C never generated: n/a
    s = np.array([[0.9, 0.2, 0.1], [0.6, 0.7, 0.2], [0.3, 0.8, 0.4], [0.1, 0.1, 0.1]])
    fid = class_fidelity_multi_label(t, s, NAMES, GROUPS)
    cas = multi_label_report(np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]), s, GROUPS)
    blocks = class_check_blocks(_result(True, fid, cas))
    md = to_markdown(blocks)
    assert "| C | tail | 2 | 0 | – | – | – | – |" in md
    assert "Hanley–McNeil" in md and "mean per-class bAcc (TPR+TNR)/2" in md
    assert "<table>" in to_html(blocks, "t")


def test_skipped_fidelity_and_no_cas():
    r = {"label_space": {"names": NAMES, "multi_label": False}, "train_class_counts": [1, 1, 1], "groups": GROUPS,
         "classifier": {"train_source": "real+synthetic"},
         "generation": {"class_fidelity": {"skipped": "the evaluated classifier saw synthetic images"}}}
    md = to_markdown(class_check_blocks(r))
    assert "Skipped: the evaluated classifier saw synthetic images." in md and "CAS" not in md
    assert class_check_blocks({"generation": {}}) == []
