"""The phantom oracle: a reference classifier for class fidelity on phantom data.

For a phantom the findings are known and drawn by medlt itself, so a near-perfect judge can be
trained: `build_oracle(recipe, out)` writes a large *balanced* phantom of the recipe's layout
(`write_phantom(..., per_class=N)`, same image size and label mode as the evaluated phantom, but
another seed, so it shares no image and no patient with it) into OUT/phantom, trains the recipe's
own classifier (recipe.classifier: architecture, method, epochs, ...) on it with
medlt.classify.train.fit_classifier, and scores it on the evaluated phantom's real test role
(balanced-test), written to OUT/oracle.json. OUT is a normal classifier run
(OUT/checkpoints/best.pt), usable as `medlt evaluate ... --reference-classifier OUT`; its
checkpoint records `reference_kind: phantom-oracle` so the reference is named
`classifier:...[train=phantom-oracle]@sha`.

Re-running with the same OUT resumes (the phantom is kept when its parameters are unchanged).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from medlt.errors import DataError
from medlt.recipe import Recipe
from medlt.utils.atomic import atomic_write_text

#: training images per class of the oracle's balanced phantom (CT-RATE: positive scans per class)
DEFAULT_PER_CLASS = {"nih-cxr-lt": 60, "mimic-cxr-lt": 60, "ct-rate": 16}


def phantom_parameters(recipe: Recipe) -> dict:
    """Parameters of the phantom the recipe reads (its data.root/medlt_phantom.json)."""
    from medlt.phantom.write import LAYOUTS, MARKER

    fmt = recipe.data.format
    if fmt not in LAYOUTS:
        raise DataError(f"data.format '{fmt}': the oracle needs a phantom in an official layout ({', '.join(LAYOUTS)}); "
                        f"for other data pass a real-only classifier as --reference-classifier")
    marker = Path(recipe.data.root) / MARKER
    if not marker.is_file():
        raise DataError(f"data.root {recipe.data.root}: no {MARKER}, so not a `medlt phantom` folder; the oracle is "
                        f"for phantoms (for real data pass a real-only classifier as --reference-classifier)")
    try:
        return dict(json.loads(marker.read_text())["parameters"])
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{marker}: unreadable phantom marker") from None


def oracle_recipe(recipe: Recipe, phantom_dir: Path) -> Recipe:
    """The recipe pointed at the oracle's balanced phantom (no disk cache)."""
    data = recipe.data.model_copy(update={"root": phantom_dir, "labels": phantom_dir, "cache_dir": None})
    return recipe.model_copy(update={"data": data})


def build_oracle(recipe: Recipe, out: str | Path, *, per_class: int | None = None, seed: int | None = None,
                 show_progress: bool = True) -> dict:
    """Write the balanced phantom, train the oracle in `out`, score it on the recipe's real test role;
    returns (and writes to OUT/oracle.json) a summary with the oracle's test scores."""
    from medlt.classify.data import classifier_data
    from medlt.classify.load import load_classifier
    from medlt.classify.reference import reference_name, reference_test_scores
    from medlt.classify.train import fit_classifier
    from medlt.cliutils import progress
    from medlt.data.table import load_table
    from medlt.phantom import write_phantom
    from medlt.phantom.write import MARKER

    params = phantom_parameters(recipe)
    fmt = recipe.data.format
    data_seed = int(params.get("seed", 0))
    seed = data_seed + 1 if seed is None else int(seed)
    if seed == data_seed:
        raise DataError(f"--seed {seed} is the seed of the evaluated phantom ({recipe.data.root}); the oracle must be "
                        f"trained on other images: choose another --seed")
    n = DEFAULT_PER_CLASS[fmt] if per_class is None else int(per_class)
    out = Path(out)
    pdir = out / "phantom"
    # train + balanced val for epoch selection; the test splits are unused (1 image per class)
    kw = dict(per_class=n, image_size=int(params["image_size"]), seed=seed, per_class_test=1,
              multi_label=bool(params.get("multi_label", False)) and fmt == "nih-cxr-lt")
    marker = pdir / MARKER
    have = json.loads(marker.read_text())["parameters"] if marker.is_file() else {}
    if not (have.get("per_class") == n and have.get("seed") == seed and have.get("image_size") == kw["image_size"]
            and have.get("multi_label") == (kw["multi_label"] or fmt == "ct-rate")):
        if (out / "checkpoints").exists():
            raise DataError(f"{out}: holds an oracle trained on another phantom (per-class/seed differ); remove it "
                            f"or use another --out")
        write_phantom(fmt, pdir, **kw, progress=lambda it, **k: progress(it, disable=not show_progress, **k))
    orecipe = oracle_recipe(recipe, pdir)
    data = classifier_data(orecipe)
    data.meta.update({"reference_kind": "phantom-oracle", "oracle_layout": fmt, "oracle_per_class": n,
                      "oracle_phantom_seed": seed, "oracle_evaluated_phantom_seed": data_seed,
                      "oracle_train_images": data.meta.get("train_images", "")})
    if show_progress:
        print(f"oracle: training {recipe.classifier.architecture} ({recipe.classifier.epochs} epochs) on "
              f"{data.meta['train_images']} balanced phantom images ({n} per class, seed {seed})", file=sys.stderr)
    summary = fit_classifier(orecipe, data, out, show_progress=show_progress)
    clf = load_classifier(out)
    table = load_table(recipe)
    groups = table.label_space.groups(table.class_counts("train"), recipe.data.group_thresholds)
    scores = reference_test_scores(recipe, clf, groups, "test")
    result = {"oracle": reference_name(clf), "run": str(out.resolve()), "checkpoint_sha256": clf.checkpoint_sha256,
              "phantom": str(pdir.resolve()), "per_class": n, "phantom_seed": seed, "evaluated_phantom_seed": data_seed,
              "train_images": int(data.meta["train_images"]), "epochs_trained": int(summary.get("epochs", 0)),
              "best_val_score": summary.get("best_val_score"), "evaluated_phantom": str(Path(recipe.data.root).resolve()),
              "test_on_evaluated_phantom": scores}
    from medlt.report.write import json_safe

    atomic_write_text(out / "oracle.json", json.dumps(json_safe(result), indent=1, allow_nan=False) + "\n")
    return result
