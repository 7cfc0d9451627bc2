"""The checks `medlt bench` makes before its first cell (and in --dry-run): every input that a cell
would otherwise reject only after hours of training is refused here, in one line naming the option,
recipe key or file.

- `--out`: a bench folder (bench.settings.json), an empty folder or a new path; any other folder
  (a `medlt synth` output, a run folder, ...) is refused so that no file is mixed into it;
- `--reference-classifier`: loads and must have the recipe's classes and image size;
- `--feature-extractor`: must load (a missing file is refused);
- `synth.quota`: must plan at least one synthetic image on this data (else every method arm is the
  real-only classifier again);
- the data: its fingerprint (medlt.data.fingerprint) must be the one every finished cell recorded;
  a cell run on other data is stale (listed by --dry-run, refused by a run).
"""

from __future__ import annotations

from pathlib import Path

from medlt.errors import DataError, RecipeError


def check_out_folder(out: Path, settings_file: str) -> None:
    """RecipeError unless OUT is new, empty, or holds a bench (its settings file)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RecipeError(f"--out {out}: is a file, not a folder")
    if not out.is_dir() or (out / settings_file).is_file():
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    what = ("a `medlt synth` output (manifest.csv)" if "manifest.csv" in entries or "plan.json" in entries
            else f"{len(entries)} entries, e.g. {entries[0]}")
    raise RecipeError(f"--out {out}: folder is not empty and holds no bench (no {settings_file}; it holds {what}); "
                      f"choose a new or empty folder")


def check_judge_inputs(recipe, label_space, reference_classifier: Path | None,
                       feature_extractor: Path | None) -> None:
    """Load the given reference classifier (classes, image size) and feature extractor on the CPU."""
    if reference_classifier is not None:
        from medlt.classify.reference import load_reference
        from medlt.errors import CheckpointError

        try:
            load_reference(reference_classifier, recipe, label_space)
        except (CheckpointError, DataError) as e:
            raise type(e)(f"--reference-classifier: {e}") from None
    if feature_extractor is not None:
        import medlt.classify.extractor  # noqa: F401  (registers the classifier extractor)
        from medlt.metrics.extractors import load_feature_extractor

        load_feature_extractor(feature_extractor, device="cpu", spatial_dims=int(recipe.model.spatial_dims))


def check_quota(recipe, table) -> int:
    """The number of synthetic images the recipe's quota plans per generator; RecipeError when none."""
    from medlt.synth.generate import make_plan

    n = make_plan(recipe, table).num_images
    if n == 0:
        raise RecipeError(f"recipe key 'synth.quota': {recipe.synth.quota} plans no synthetic image on this data "
                          f"(every class already reaches its target), so every method arm would equal the "
                          f"real-only control; choose a larger quota (e.g. to_count:N above the head count)")
    return n


def stale_cells(cells, fingerprint: dict, recorded: dict | None) -> list:
    """The finished cells whose recorded data fingerprint differs from `fingerprint` (a cell without
    its own record counts as run under `recorded`, the one in bench.settings.json, when there is one)."""
    out = []
    for c in cells:
        if not c.done:
            continue
        sha = c.record().get("data_fingerprint") or (recorded or {}).get("sha256")
        if sha is not None and sha != fingerprint["sha256"]:
            out.append(c)
    return out


def stale_error(stale: list, out: Path, data_root, change: str) -> DataError:
    first = stale[0].dir.relative_to(out)
    return DataError(f"data under data.root ({data_root}) changed since cell {first} was run ({change}; "
                     f"{len(stale)} finished cell(s) stale); their numbers cannot be compared with new cells: "
                     f"use a new --out")
