"""Build `ClassifierData` from a recipe with DATA's loaders.

`--train-manifest merged.csv` (from `medlt synth`): the *training* role is read from that
manifest (format manifest, same classes, image size and preprocessing as the recipe); the val role
always comes from the recipe itself, so real-only and real+synthetic runs are selected and
tested on exactly the same images.
"""

from __future__ import annotations

from pathlib import Path

from medlt.classify.augment import AugmentedDataset, classifier_augmentation
from medlt.classify.sources import source_fields
from medlt.classify.train import ClassifierData
from medlt.errors import DataError
from medlt.recipe import Recipe
from medlt.utils.seeding import derive_seed


def recipe_for_train_manifest(recipe: Recipe, manifest: str | Path, root: str | Path | None = None) -> Recipe:
    """The recipe with its data section pointed at a medlt manifest (e.g. synth's merged.csv).

    data.root: `root` if given, else the folder named in <manifest stem>.root.txt next to the
    manifest (synth writes merged.root.txt), else the manifest's folder."""
    from medlt.data.table import load_table

    manifest = Path(manifest).resolve()
    if not manifest.is_file():
        raise DataError(f"--train-manifest: file not found: {manifest}")
    if root is None:
        hint = manifest.with_name(f"{manifest.stem}.root.txt")
        root = Path(hint.read_text().strip()) if hint.is_file() else manifest.parent
        if not Path(root).is_absolute():
            root = (manifest.parent / root).resolve()
    space = load_table(recipe).label_space
    data = recipe.data.model_copy(update={"format": "manifest", "root": Path(root), "labels": manifest,
                                          "classes": list(space.names), "multi_label": space.multi_label,
                                          "cache_dir": None})
    return recipe.model_copy(update={"data": data})


def classifier_data(recipe: Recipe, *, train_manifest: str | Path | None = None,
                    train_root: str | Path | None = None) -> ClassifierData:
    from medlt.data.loaders import build_dataloader, build_dataset
    from medlt.data.table import load_table

    cfg = recipe.classifier
    train_recipe = recipe if train_manifest is None else recipe_for_train_manifest(recipe, train_manifest,
                                                                                    train_root)
    if train_manifest is not None:
        refuse_synthetic_only(Path(train_manifest).resolve())
    table = load_table(train_recipe)
    real_space = load_table(recipe).label_space if train_manifest is not None else table.label_space
    if table.label_space != real_space:
        raise DataError(f"--train-manifest {train_manifest}: classes {list(table.label_space.names)} differ "
                        f"from the recipe's {list(real_space.names)}")
    # deterministic preprocessing only (cacheable); the classifier's own augmentation on top
    # (classifier.augment_rotation_deg / augment_flip; data.augment is the diffusion's)
    base_ds = build_dataset(train_recipe, "train", augment=False)
    if len(base_ds) == 0:
        raise DataError("the training role has no images")
    seed = derive_seed(recipe.seed, "classifier-data")
    spatial_dims = int(base_ds[0]["image"].ndim - 1)
    transform = classifier_augmentation(cfg, spatial_dims, seed=derive_seed(seed, "augment"))
    train_ds = AugmentedDataset(base_ds, transform) if transform is not None else base_ds
    bs = cfg.per_rank_batch_size
    # main stage: the natural distribution (plain shuffling), whatever the diffusion's
    # training.class_balanced_q; only cRT's stage 2 resamples (uniform over classes, q = 0)
    train = build_dataloader(train_recipe, "train", bs, shuffle=True, balanced_q=None, seed=seed, dataset=train_ds)
    from monai.data import DataLoader

    # never sharded: under torchrun every rank scores the whole val set, so model selection agrees
    val = DataLoader(build_dataset(recipe, "val"), batch_size=bs, shuffle=False,
                     num_workers=recipe.data.num_workers)
    frame = base_ds.frame  # the training rows kept (data.on_bad_image=skip may leave some out)
    n_syn = int((frame["source"] == "synthetic").sum()) if "source" in frame.columns else 0
    return ClassifierData(
        train=train, val=val, label_space=table.label_space,
        train_counts=[int(c) for c in table.label_matrix(frame).sum(axis=0)],
        spatial_dims=spatial_dims, train_transform=transform,
        balanced_train=lambda: build_dataloader(train_recipe, "train", bs, shuffle=True, balanced_q=0.0,
                                                seed=seed, dataset=train_ds),
        meta={"train_manifest": str(train_manifest) if train_manifest else "", "train_images": len(train_ds),
              "train_synthetic_images": n_syn},
        **source_fields(train_recipe, base_ds, train_ds, bs, seed),  # mixing / finishing by row source
    )


def _manifest_sources(manifest: Path) -> list[str] | None:
    """The `source` column of a manifest ([] for one without rows; None when unreadable or without
    the column: the table reader then names the problem)."""
    import pandas as pd

    try:
        frame = pd.read_csv(manifest, usecols=lambda c: c == "source", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return []
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return frame["source"].tolist() if "source" in frame.columns else (None if len(frame) else [])


def refuse_synthetic_only(manifest: Path) -> None:
    """DataError when a --train-manifest holds synthetic rows only (synth's DIR/manifest.csv): the
    classifier would lose the real images, and the file has no real val/test rows; synth's
    merged.csv next to it holds the real rows plus the synthetic training rows."""
    sources = _manifest_sources(manifest)
    if not sources or any(s != "synthetic" for s in sources):
        return
    merged = manifest.with_name("merged.csv")
    there = "" if merged.is_file() else " (not there yet: `medlt synth` writes it when a run finishes)"
    raise DataError(f"--train-manifest {manifest}: every row is synthetic (`medlt synth`'s manifest.csv); to train "
                    f"on real + synthetic images give --train-manifest {merged}{there}; a classifier trained on "
                    f"synthetic images only is `medlt evaluate --cas`")


def synthetic_recipe(recipe: Recipe, synthetic_dir: str | Path) -> Recipe:
    """Recipe reading a `medlt synth` folder (DIR/manifest.csv, paths relative to DIR); every
    synthetic row sits in the training split, so every role points at that split."""
    synthetic_dir = Path(synthetic_dir)
    manifest = synthetic_dir / "manifest.csv"
    if not manifest.is_file():
        raise DataError(f"--synthetic {synthetic_dir}: no manifest.csv (a `medlt synth` output folder)")
    if _manifest_sources(manifest) == []:
        raise DataError(f"--synthetic {synthetic_dir}: the synthetic set is empty ({manifest} has no rows); "
                        f"nothing to judge: run `medlt synth` with a quota that plans images")
    r = recipe_for_train_manifest(recipe, manifest, root=synthetic_dir)
    t = recipe.data.splits.train
    r.data.splits = r.data.splits.model_copy(update={"train": t, "val": t, "test": t, "test_longtail": None})
    return r
