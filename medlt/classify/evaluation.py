"""`medlt evaluate`: classification metrics on the test roles, and generation quality of a
synthetic set (FID/KID per class/group/overall, CT 2.5D + 3D FID, diversity, memorization).

Returns a JSON-safe result dict (every number) plus in-memory assets (sample images) that
`medlt.report.write_report` turns into report.json / report.md / report.html.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import torch

from medlt.classify.data import synthetic_recipe
from medlt.classify.load import load_classifier
from medlt.classify.train import predict
from medlt.cliutils import progress
from medlt.errors import DataError, ValidationFailed
from medlt.recipe import Recipe, recipe_to_dict


def recipe_sha256(recipe: Recipe) -> str:
    return hashlib.sha256(json.dumps(recipe_to_dict(recipe), sort_keys=True).encode()).hexdigest()


def _display(img: torch.Tensor) -> torch.Tensor:
    """(1, H, W[, D]) model-space -> (H, W) in [0, 1] (3D: middle axial slice)."""
    x = img[0]
    if x.ndim == 3:
        x = x[:, :, x.shape[2] // 2]
    return ((x.float() + 1) / 2).clamp(0, 1).cpu()


def _image_paths(frame) -> dict[str, str]:
    """id -> image file of a table's rows."""
    return dict(zip(frame["id"].astype(str), frame["image"].astype(str), strict=True))


def _classes_of(label: torch.Tensor) -> list[int]:
    return [int(label)] if label.ndim == 0 else [int(c) for c in torch.nonzero(label > 0.5).flatten()]


def classification_metrics(recipe: Recipe, clf, table, groups: list[str], *, show_progress: bool,
                           out_dir: Path | None = None) -> tuple[dict, dict]:
    """Metrics per test role, each with 95% bootstrap intervals under "confidence_intervals"
    (evaluate.bootstrap_resamples > 0; medlt.metrics.bootstrap) and, with out_dir, the per-image
    predictions in out_dir/predictions_<role>.csv (medlt.classify.predictions)."""
    from medlt.classify.predictions import predictions_file, write_predictions
    from medlt.data.loaders import build_dataloader
    from medlt.metrics.bootstrap import multi_label_bootstrap, single_label_bootstrap
    from medlt.metrics.classification import multi_label_report, single_label_report
    from medlt.utils.seeding import derive_seed

    ls = table.label_space
    out, preds = {}, {}
    for role in recipe.evaluate.roles:
        split = getattr(recipe.data.splits, role, None)
        if split is None:
            out[role] = {"skipped": f"data.splits.{role} is null"}
            continue
        if split not in table.splits:
            out[role] = {"skipped": f"split '{split}' has no rows"}
            continue
        loader = build_dataloader(recipe, role, recipe.evaluate.batch_size, shuffle=False)
        t, p, ids = predict(clf.net, loader, clf.device, multi_label=ls.multi_label,
                            show_progress=show_progress, desc=f"predict {role}")
        thr = recipe.classifier.threshold
        if ls.multi_label:
            rep = multi_label_report(t.numpy(), p.numpy(), groups, thr)
        else:
            rep = single_label_report(t.numpy(), p.argmax(1).numpy(), ls.num_classes, groups)
        n_boot = recipe.evaluate.bootstrap_resamples
        if n_boot > 0:
            seed = derive_seed(recipe.seed, "bootstrap", role) % (2**32)
            rep["confidence_intervals"] = (
                multi_label_bootstrap(t.numpy(), p.numpy(), groups, threshold=thr, n_resamples=n_boot, seed=seed)
                if ls.multi_label else
                single_label_bootstrap(t.numpy(), p.argmax(1).numpy(), ls.num_classes, groups,
                                       n_resamples=n_boot, seed=seed))
        if out_dir is not None:
            write_predictions(out_dir, role, ls, t.numpy(), p.numpy(), ids, thr)
            rep["predictions_file"] = predictions_file(".", role).name
        out[role] = {"split": split, **rep}
        preds[role] = (t, p, ids)
    return out, preds


def check_synthetic_set(recipe: Recipe, synthetic_dir: str | Path) -> Recipe:
    """The recipe reading a synthetic folder, after checking its manifest: every row valid
    (ValidationFailed lists them), source=synthetic, in the training split. Cheap (no image is read),
    so `evaluate` runs it before writing anything."""
    from medlt.data.table import load_table

    manifest = Path(synthetic_dir) / "manifest.csv"
    syn_recipe = synthetic_recipe(recipe, synthetic_dir)
    syn_table = load_table(syn_recipe)
    not_syn = syn_table.frame[syn_table.frame["source"] != "synthetic"]
    if len(not_syn):
        r = not_syn.iloc[0]
        raise DataError(f"{manifest}:row {r.get('csv_row', '?')}: source is '{r['source']}', expected "
                        f"'synthetic' ({len(not_syn)} such rows); pass synth's own manifest.csv")
    syn_split = recipe.data.splits.train
    if syn_split not in syn_table.splits:
        raise DataError(f"{manifest}: no rows in split '{syn_split}' (synthetic rows belong to the train split)")
    return syn_recipe


def _files_under(folder: Path) -> dict[str, int]:
    """relative path -> mtime (ns) of every file under `folder` (none when it does not exist)."""
    if not folder.is_dir():
        return {}
    return {str(f.relative_to(folder)): f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()}


def generation_metrics(recipe: Recipe, table, groups: list[str], synthetic_dir: Path, extractors,
                       extractor_2d, out_dir: Path, *, show_progress: bool,
                       extractor_info: list[dict] | None = None) -> tuple[dict, dict]:
    """Generation quality of a synthetic folder against the real training split, per feature
    extractor (`extractors`: one or several; every metric block is keyed by extractor name and
    never compared across extractors). JSON layout: docs/evaluation.md#the-generation-block-of-reportjson."""
    from torch.utils.data import DataLoader

    from medlt.data.loaders import build_dataset
    from medlt.metrics.diversity import ClassDiversity
    from medlt.metrics.feature_stats import ClassFeatureStats
    from medlt.metrics.memorization import MemorizationAccumulator, real_reference_subset
    from medlt.metrics.slices import PLANES, volume_slices
    from medlt.report.figures import save_pair_png

    extractors = list(extractors) if isinstance(extractors, list | tuple) else [extractors]
    info = extractor_info or [{"name": e.name, "source": None, "sha256": None} for e in extractors]
    ev = recipe.evaluate
    ls = table.label_space
    names = list(ls.names)
    syn_recipe = check_synthetic_set(recipe, synthetic_dir)
    syn_ds = build_dataset(syn_recipe, "train")
    real_ds = build_dataset(recipe, "train")
    sdims = int(real_ds[0]["image"].ndim - 1)
    for e in extractors:
        if e.spatial_dims is not None and e.spatial_dims != sdims:
            raise DataError(f"feature extractor {e.name} is {e.spatial_dims}D but the images are {sdims}D")
    bs = ev.batch_size
    kw = dict(reservoir_capacity=ev.kid_reservoir, fid_samples_per_class=ev.fid_samples_per_class,
              min_real_per_class=ev.min_real_per_class, min_synthetic_per_class=ev.min_synthetic_per_class,
              seed=recipe.seed)
    stats = [ClassFeatureStats(names, groups, extractor_name=e.name, **kw) for e in extractors]
    planes, n_slices, per_volume = {}, {}, {}
    if sdims == 3:
        planes = {p: ClassFeatureStats(names, groups, extractor_name=extractor_2d.name, **kw) for p in PLANES}
        n_slices = {p: {"real": 0, "synthetic": 0} for p in PLANES}
    n_grid = ev.grid_images_per_class
    grid = {n: {"real": [], "synthetic": []} for n in names}

    def stream(ds, side, on_batch=None):
        for batch in progress(DataLoader(ds, batch_size=bs, shuffle=False), desc=f"features {side}",
                              unit="batch", disable=not show_progress):
            x, y = batch["image"].float(), torch.as_tensor(batch["label"])
            x, y = (t.as_tensor() if hasattr(t, "as_tensor") else t for t in (x, y))  # MONAI's batch meta breaks slicing
            feats = [e(x) for e in extractors]
            for st, f in zip(stats, feats, strict=True):
                st.update(side, f, y)
            for plane in planes:  # 2.5D: every (kept) slice along each axis is one sample
                sl, k = volume_slices(x, plane, ev.center_slices_ratio, ev.slice_stride)
                per_volume[plane] = k
                ys = y.repeat_interleave(k, dim=0)
                for i in range(0, sl.shape[0], bs):
                    planes[plane].update(side, extractor_2d(sl[i:i + bs]), ys[i:i + bs])
                n_slices[plane][side] += sl.shape[0]
            for img, lab in zip(x, y, strict=True):
                for c in _classes_of(lab):
                    bucket = grid[names[c]][side]
                    if len(bucket) < n_grid:
                        bucket.append(_display(img))
            if on_batch:
                on_batch(feats, x, y, [str(i) for i in batch["id"]])

    real_f: list[list[torch.Tensor]] = [[] for _ in extractors]
    real_ids: list[str] = []
    keep, reference = real_reference_subset(len(real_ds), ev.max_real_reference, recipe.seed)
    real_ref = real_ds
    if keep is not None:
        from torch.utils.data import Subset

        real_ref = Subset(real_ds, keep)

    def on_real(feats, x, y, ids):
        for acc, f in zip(real_f, feats, strict=True):
            acc.append(f)
        real_ids.extend(ids)

    stream(real_ref, "real", on_real)
    memos = [MemorizationAccumulator(torch.cat(f), real_ids, names, groups, ratio_threshold=ev.memorization_ratio_threshold,
                                     top_k=ev.memorization_pairs_saved) for f in real_f]
    real_f.clear()  # the accumulators hold their own copies
    div = ClassDiversity(names, kernel_size=ev.ms_ssim_kernel_size, weights=ev.ms_ssim_weights,
                         max_pairs=ev.ms_ssim_max_pairs, seed=recipe.seed)

    def on_syn(feats, x, y, ids):
        for m, f in zip(memos, feats, strict=True):
            m.update(f, y, ids)
        div.update(x, y)

    stream(syn_ds, "synthetic", on_syn)
    kid_kw = dict(kid_subset_size=ev.kid_subset_size, kid_num_subsets=ev.kid_num_subsets,
                  bootstrap_replicates=ev.fid_bootstrap_replicates)
    syn_index = {i: k for k, i in enumerate(syn_ds.ids)}
    real_index = {i: k for k, i in enumerate(real_ds.ids)}
    by_ext = {}
    for j, (e, st, memo) in enumerate(zip(extractors, stats, memos, strict=True)):
        mem = memo.compute()
        for rank, pair in enumerate(mem["closest_pairs"]):  # the smallest ratios, side by side
            rel = f"memorization/extractor{j}_pair_{rank:02d}.png"
            ratio = "undefined" if pair["ratio"] is None else f"{pair['ratio']:.3g}"
            save_pair_png(out_dir / rel, _display(syn_ds[syn_index[pair["synthetic_id"]]]["image"]),
                          _display(real_ds[real_index[pair["real_id"]]]["image"]),
                          title=f"distance ratio {ratio} (flagged at <= {mem['ratio_threshold']:g})"
                                f"{' FLAGGED' if pair['flagged'] else ''}{' EXACT COPY' if pair['exact_copy'] else ''}",
                          labels=(f"synthetic {pair['synthetic_id']}", f"real {pair['real_id']}"))
            pair["png"] = rel
        # every synthetic image's nearest real image, ratio and flag: what a user acts on
        mem["per_image_csv"] = f"memorization/extractor{j}_per_image.csv"
        memo.write_per_image_csv(out_dir / mem["per_image_csv"], images=_image_paths(syn_ds.frame),
                                 real_images=_image_paths(real_ds.frame))
        by_ext[e.name] = {"feature_extractor": e.name, "source": info[j].get("source"),
                          "sha256": info[j].get("sha256"), "fid_kid": st.compute(**kid_kw),
                          "memorization": {"feature_extractor": e.name, **mem}}
    result = {"synthetic_dir": str(Path(synthetic_dir).resolve()), "n_synthetic": len(syn_ds),
              "n_real_train": len(real_ref), "real_reference": reference,
              "feature_extractor": extractors[0].name, "feature_extractors": info, "by_extractor": by_ext}
    if planes:
        per_plane = {p: st.compute(**kid_kw) for p, st in planes.items()}

        def mean_of(vals):
            return sum(vals) / len(vals) if vals and all(v is not None for v in vals) else None

        mean_planes = {s: mean_of([per_plane[p]["scopes"][s]["fid"] for p in PLANES])
                       for s in per_plane["axial"]["scopes"]}
        mean_planes.update({f"class:{n}": mean_of([per_plane[p]["per_class"][n]["fid"] for p in PLANES])
                            for n in names})
        result["fid_2_5d"] = {
            "feature_extractor": extractor_2d.name, "planes": list(PLANES),
            "definition": "2D FID of the slices along each axis (every kept slice one sample, MAISI's 2.5D "
                          "FID), per plane, and their mean over the three planes",
            "center_slices_ratio": ev.center_slices_ratio, "slice_stride": ev.slice_stride,
            "slices_per_volume": per_volume, "n_slices": n_slices,
            "mean_of_planes": mean_planes, "per_plane": per_plane,
            "fid_3d_features": {n: b["fid_kid"]["scopes"]["overall"]["fid"] for n, b in by_ext.items()}}
    result["diversity"] = div.compute()
    return result, {"grid": grid}


def feature_extractors(paths, classifier_run, clf, *, device: str, recipe=None) -> tuple[list, list[dict]]:
    """The extractors for the generation metrics, in the order given (`--feature-extractor`,
    repeatable), each with its file and the file's sha256; default: the evaluated classifier."""
    from medlt.classify.extractor import classifier_extractor
    from medlt.classify.load import checkpoint_of
    from medlt.metrics.extractors import load_feature_extractor
    from medlt.utils.checkpoint import file_sha256

    if not paths:
        ext = classifier_extractor(classifier_run, device)
        return [ext], [{"name": ext.name, "source": str(clf.checkpoint_path.resolve()), "sha256": clf.checkpoint_sha256,
             "default": True}]
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    exts, info = [], []
    for p in paths:
        ext = load_feature_extractor(p, device=device, recipe=recipe, spatial_dims=clf.spatial_dims)
        f = checkpoint_of(p) if Path(p).is_dir() else Path(p)
        if ext.name in {e.name for e in exts}:
            raise DataError(f"--feature-extractor {p}: the same extractor ({ext.name}) is given twice")
        exts.append(ext)
        info.append({"name": ext.name, "source": str(f.resolve()), "sha256": file_sha256(f), "default": False})
    return exts, info


def evaluate(recipe: Recipe, classifier_run: str | Path, out_dir: str | Path, *,
             synthetic_dir: str | Path | None = None,
             feature_extractor: str | Path | list[str | Path] | None = None,
             feature_extractor_recipe: Recipe | None = None, feature_extractor_2d: str | Path | None = None,
             reference_classifier: str | Path | None = None, cas: bool = False,
             device: str = "cpu", show_progress: bool = True,
             reference_source: str | None = None) -> tuple[dict, dict]:
    from medlt.data.table import load_table
    from medlt.metrics.extractors import load_feature_extractor, random_2d_extractor

    out_dir = Path(out_dir)
    if synthetic_dir is None and (reference_classifier is not None or cas):
        raise DataError("--reference-classifier and --cas judge a synthetic set: add --synthetic DIR")
    clf = load_classifier(classifier_run, device)
    table = load_table(recipe)
    ls = table.label_space
    if clf.label_space != ls:
        raise DataError(f"classifier {clf.checkpoint_path} was trained on classes {list(clf.label_space.names)}, "
                        f"the recipe has {list(ls.names)}")
    if reference_classifier is not None:  # fail before the long passes if it does not fit the recipe
        from medlt.classify.reference import load_reference

        load_reference(reference_classifier, recipe, ls)
    exts = info = ext2d = None
    if synthetic_dir is not None:  # check the synthetic set and load the extractors before writing anything
        check_synthetic_set(recipe, synthetic_dir)
        exts, info = feature_extractors(feature_extractor, classifier_run, clf, device=device,
                                        recipe=feature_extractor_recipe)
        if clf.spatial_dims == 3:
            ext2d = (load_feature_extractor(feature_extractor_2d, device=device, recipe=feature_extractor_recipe,
                                            spatial_dims=2)
                     if feature_extractor_2d else random_2d_extractor(device=device, seed=recipe.seed))
    before = _files_under(out_dir)
    try:
        return _evaluate(recipe, classifier_run, out_dir, clf, table, synthetic_dir, exts, info, ext2d,
                         feature_extractor=feature_extractor, reference_classifier=reference_classifier, cas=cas,
                         device=device, show_progress=show_progress, reference_source=reference_source)
    except ValidationFailed as e:  # found after files were written: never "nothing was changed"
        written = sorted(f for f, t in _files_under(out_dir).items() if before.get(f) != t)
        if not written:
            raise
        shown = ", ".join(written[:4]) + (f" and {len(written) - 4} more" if len(written) > 4 else "")
        raise DataError("\n".join(map(str, e.problems)) + f"\n{len(e.problems)} problem(s); {out_dir} already "
                        f"holds {shown} from this unfinished run") from None


def _evaluate(recipe: Recipe, classifier_run, out_dir: Path, clf, table, synthetic_dir, exts, info, ext2d, *,
              feature_extractor, reference_classifier, cas: bool, device: str, show_progress: bool,
              reference_source: str | None) -> tuple[dict, dict]:
    ls = table.label_space
    counts = table.class_counts("train")
    groups = ls.groups(counts, recipe.data.group_thresholds)
    result = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe_name": recipe.name, "recipe_sha256": recipe_sha256(recipe), "recipe": recipe_to_dict(recipe),
        "classifier": {"checkpoint": str(clf.checkpoint_path.resolve()), "checkpoint_sha256": clf.checkpoint_sha256,
                       "architecture": clf.recipe.classifier.architecture, "method": clf.recipe.classifier.method,
                       "train_manifest": clf.meta.get("train_manifest", ""),
                       "train_source": "real+synthetic" if clf.meta.get("train_manifest") else "real",
                       "train_class_counts": clf.train_class_counts},
        "label_space": ls.to_dict(), "train_class_counts": counts, "groups": groups,
        "group_thresholds": list(recipe.data.group_thresholds),
    }
    result["classification"], preds = classification_metrics(recipe, clf, table, groups,
                                                             show_progress=show_progress, out_dir=out_dir)
    assets: dict = {}
    if synthetic_dir is not None:
        gen, assets = generation_metrics(recipe, table, groups, Path(synthetic_dir), exts, ext2d, out_dir,
                                         show_progress=show_progress, extractor_info=info)
        result["generation"] = gen
        from medlt.classify.synthetic_classes import synthetic_class_checks  # class fidelity, CAS

        gen.update(synthetic_class_checks(recipe, result, table, groups, Path(synthetic_dir), out_dir,
                                          classifier_run=classifier_run, reference_classifier=reference_classifier,
                                          cas=cas, device=device, show_progress=show_progress,
                                          reference_source=reference_source))
        if not feature_extractor and result["classifier"]["train_source"] != "real":
            gen["warning"] = ("the default feature extractor is the evaluated classifier, which saw synthetic "
                              "images; pass --feature-extractor REAL_ONLY_RUN for a clean FID")
    return result, assets
