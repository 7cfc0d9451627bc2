"""`medlt classify` and `medlt evaluate`."""

from __future__ import annotations

from pathlib import Path

import typer

from medlt.cliutils import RECIPE_ARG, SET_OPT, load_recipe_cli


def classify(
    recipe: Path = RECIPE_ARG,
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints/{last,best}.pt, recipe.yaml, "
                                               "history.json, summary.json. Re-running resumes.",
                             show_default=False),
    train_manifest: Path = typer.Option(None, "--train-manifest", help="Train on this medlt manifest instead of "
                                        "the recipe's training split, e.g. DIR/merged.csv from `medlt synth` "
                                        "(real + synthetic). Validation stays the recipe's own."),
    train_root: Path = typer.Option(None, "--train-root", help="data.root for --train-manifest (default: the "
                                    "folder in <manifest>.root.txt, else the manifest's folder)."),
    sets: list[str] = SET_OPT,
) -> None:
    """Train the downstream classifier (MONAI DenseNet121/ResNet, 2D or 3D) from recipe.classifier.

    Softmax cross-entropy (single-label) or BCE (multi-label); classifier.method picks plain ERM,
    class-balanced reweighting (weighted-mean CE) or decoupled cRT (class-balanced stage 2). The
    main stage always sees the natural class distribution (training.class_balanced_q is the
    diffusion's). LongTailCXR protocol: rotation ±15° (classifier.augment_rotation_deg; flip:
    classifier.augment_flip, off by default), early stopping on the val role's balanced accuracy
    (classifier.early_stopping_patience, 15), optional local initial weights (classifier.init_weights).
    Example: medlt classify recipes/phantom/nih_cxr_lt.yaml --out runs/clf-real
    Multi-GPU / multi-process: torchrun --nproc_per_node N -m medlt classify ... (DDP).
    """
    from medlt.classify.data import classifier_data
    from medlt.classify.train import fit_classifier
    from medlt.utils.device import check_recipe_devices
    from medlt.utils.distributed import cleanup, init_distributed

    r = load_recipe_cli(recipe, sets, uses=("classifier",))
    check_recipe_devices(r, ("classifier.device",))
    info = init_distributed(r.classifier.device)  # before the loaders, so torchrun shards training
    data = classifier_data(r, train_manifest=train_manifest, train_root=train_root)
    summary = fit_classifier(r, data, out, show_progress=info.is_main)
    cleanup()
    if not info.is_main:
        return
    typer.echo(f"best {summary['selection_metric']}: {summary['best_val_score']:.4f}  "
               f"-> {out / 'checkpoints' / 'best.pt'}")


def evaluate(
    recipe: Path = RECIPE_ARG,
    classifier: Path = typer.Option(..., "--classifier", help="Classifier run folder (or its .pt) from "
                                    "`medlt classify`.", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output folder: report.json, report.md, report.html, figures/, "
                             "memorization/.", show_default=False),
    synthetic: Path = typer.Option(None, "--synthetic", help="A `medlt synth` output folder (manifest.csv): adds "
                                   "FID/KID per class/group/overall, diversity and memorization."),
    feature_extractor: list[Path] = typer.Option(None, "--feature-extractor", metavar="<path>", help="Features for FID/KID/"
                                                 "memorization: a classifier run/.pt, a TorchScript file, or a state "
                                                 "dict (plus its recipe: next option). Repeatable: every metric "
                                                 "is computed per extractor, keyed by its name and file sha256 "
                                                 "(never compare values across extractors). Default: the "
                                                 "--classifier's penultimate features (train it on real data only)."),
    feature_extractor_recipe: Path = typer.Option(None, "--feature-extractor-recipe", help="Recipe whose "
                                                  "classifier: section builds a plain state dict's architecture."),
    feature_extractor_2d: Path = typer.Option(None, "--feature-extractor-2d", help="CT only: 2D extractor for the "
                                              "2.5D FID (default: a seeded random-init 2D ResNet, named as such)."),
    reference_classifier: Path = typer.Option(None, "--reference-classifier", help="Class fidelity judge (a "
                                              "`medlt classify` or `medlt oracle` run/.pt with the recipe's classes): "
                                              "the share of synthetic images of each class it assigns to that class. "
                                              "Default: the --classifier when it was trained on real images only."),
    cas: bool = typer.Option(False, "--cas", help="Also compute the Classification Accuracy Score: train the recipe's "
                             "classifier on the --synthetic images only (OUT/cas_classifier) and test it on the real "
                             "test split. Off by default: it trains a classifier."),
    sets: list[str] = SET_OPT,
) -> None:
    """Score a classifier on the balanced and long-tailed test roles, optionally judge a synthetic
    set, and write report.json / report.md / report.html into --out.

    Example: medlt evaluate recipes/phantom/nih_cxr_lt.yaml --classifier runs/clf-real
    --synthetic runs/synth --out runs/eval-real
    """
    from medlt.classify.evaluation import evaluate as run_eval
    from medlt.recipe import load_recipe
    from medlt.report.write import write_report
    from medlt.utils.device import resolve_device

    r = load_recipe_cli(recipe, sets, uses=("classifier",))
    device = str(resolve_device(r.classifier.device, "classifier.device"))
    fer = load_recipe(feature_extractor_recipe) if feature_extractor_recipe else None
    result, assets = run_eval(r, classifier, out, synthetic_dir=synthetic, feature_extractor=feature_extractor,
                              feature_extractor_recipe=fer, feature_extractor_2d=feature_extractor_2d,
                              reference_classifier=reference_classifier, cas=cas,
                              device=device)
    from medlt.data.bad_images import skipped_image_counts, write_skipped_images

    write_skipped_images(out)  # data.on_bad_image=skip: OUT/skipped_images.csv
    result["skipped_images"] = skipped_image_counts(out, classifier)
    paths = write_report(out, result, assets)
    for role, m in result["classification"].items():
        if "skipped" in m:
            continue
        key = "balanced_accuracy" if "balanced_accuracy" in m else "mean_per_class_balanced_accuracy_tpr_tnr"
        iv = (m.get("confidence_intervals") or {}).get(key)
        typer.echo(f"{role}: {key} = {m[key]:.4f}" + (f" (95% CI {iv[0]:.4f}–{iv[1]:.4f})" if iv else ""))
    _echo_class_checks(result.get("generation", {}))
    typer.echo(f"report: {paths['html']}")


def _echo_class_checks(gen: dict) -> None:
    fid, cas = gen.get("class_fidelity"), gen.get("cas")
    if fid and "skipped" in fid:
        typer.echo(f"class fidelity skipped: {fid['skipped']}")
    elif fid:
        key = "mean_class_fidelity" if fid["mode"] == "single-label" else "mean_auroc"
        typer.echo(f"class fidelity ({fid['reference_classifier']['name']}): {key} = {fid[key]:.4f}")
    if cas:
        key = "balanced_accuracy" if "balanced_accuracy" in cas else "mean_per_class_balanced_accuracy_tpr_tnr"
        typer.echo(f"CAS ({cas['test_split']}): {key} = {cas[key]:.4f}")
        if cas.get("warning"):
            typer.echo(f"warning: CAS: {cas['warning']}", err=True)


def oracle(
    recipe: Path = RECIPE_ARG,
    out: Path = typer.Option(..., "--out", help="Oracle run folder: phantom/ (the balanced phantom), checkpoints/, "
                             "oracle.json. Re-running resumes.", show_default=False),
    per_class: int = typer.Option(None, "--per-class", help="Training images per class of the balanced phantom "
                                  "(CT-RATE: positive scans). Default: 60 (CXR), 16 (CT-RATE)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the balanced phantom; must differ from the evaluated "
                             "phantom's (default: its seed + 1)."),
    sets: list[str] = SET_OPT,
) -> None:
    """Train a phantom oracle: the recipe's classifier on a large balanced phantom from another seed.

    The recipe must read a `medlt phantom` folder; the oracle's phantom has the same layout, image
    size and label mode, N training images per class, and no image in common with it. Its own
    balanced accuracy on the evaluated phantom's test split is printed and kept in oracle.json.
    Use it as the class fidelity judge: medlt evaluate RECIPE --classifier RUN --synthetic SYN
    --reference-classifier OUT --out EVAL. More epochs: --set classifier.epochs=20.
    Example: medlt oracle recipes/phantom/nih_cxr_lt.yaml --out runs/oracle --per-class 60
    """
    from medlt.classify.oracle import build_oracle
    from medlt.utils.device import check_recipe_devices

    r = load_recipe_cli(recipe, sets, uses=("classifier",))
    check_recipe_devices(r, ("classifier.device",))
    res = build_oracle(r, out, per_class=per_class, seed=seed)
    t = res["test_on_evaluated_phantom"]
    key = "balanced_accuracy" if "balanced_accuracy" in t else "mean_per_class_balanced_accuracy_tpr_tnr"
    typer.echo(f"oracle {res['oracle']}: {key} on {t['split']} of {res['evaluated_phantom']} = {t[key]:.4f} "
               f"({res['train_images']} training images, {res['epochs_trained']} epochs) -> {out}")


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
    app.command("evaluate")(evaluate)
    app.command("oracle")(oracle)
