"""The checks `medlt bench` makes before its first cell (and in --dry-run): every input that a cell
would otherwise reject only after hours of training is refused here, in one line naming the option,
recipe key or file.

- `--out`: a bench folder (bench.settings.json), an empty folder or a new path; any other folder
  (a `medlt synth` output, a run folder, ...) is refused so that no file is mixed into it; it must be
  writable (a file is created and removed in it, or in its nearest existing parent); a run holds
  OUT/.lock (an exclusive lock) while it works, so a second bench in the same folder is refused;
- `--reference-classifier`: loads and must have the recipe's classes and image size;
- `--feature-extractor`: must load (a missing file is refused);
- `synth.quota`: must plan at least one synthetic image on this data (else every method arm is the
  real-only classifier again);
- the data: its fingerprint (medlt.data.fingerprint) must be the one every finished cell recorded;
  a cell run on other data is stale (listed by --dry-run, refused by a run).
"""

from __future__ import annotations

from pathlib import Path

from medlt.errors import DataError, OutputError, RecipeError

#: the lock file a running bench holds in its folder
LOCK = ".lock"


def check_out_folder(out: Path, settings_file: str) -> None:
    """RecipeError unless OUT is new, empty, or holds a bench (its settings file)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RecipeError(f"--out {out}: is a file, not a folder")
    if not out.is_dir() or (out / settings_file).is_file():
        return
    entries = sorted(p.name for p in out.iterdir() if p.name != LOCK)
    if not entries:
        return
    what = ("a `medlt synth` output (manifest.csv)" if "manifest.csv" in entries or "plan.json" in entries
            else f"{len(entries)} entries, e.g. {entries[0]}")
    raise RecipeError(f"--out {out}: folder is not empty and holds no bench (no {settings_file}; it holds {what}); "
                      f"choose a new or empty folder")


def check_writable(out: Path) -> None:
    """OutputError naming --out unless a file can be created in OUT (or, for a new OUT, in its nearest
    existing parent, where OUT would be made); the probe file is removed at once."""
    import os
    import tempfile

    out = Path(out)
    where = out
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".medlt-write-check-", dir=where)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise OutputError(f"--out {out}: cannot write in {where} ({e.strerror or e}); choose a writable folder") from None


def lock_out_folder(out: Path):
    """Take the exclusive lock OUT/.lock (fcntl.flock) for this process; returns the open file, which
    holds the lock until it is closed or the process ends. OutputError naming the folder when another
    bench holds it."""
    import fcntl

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / LOCK, "a")  # noqa: SIM115  (held for the run)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise OutputError(f"--out {out}: another `medlt bench` is running in this folder (it holds {out / LOCK}); "
                          f"wait for it to finish or choose another --out") from None
    return f


def check_regularizers_not_set(sets: list[str]) -> None:
    """UsageError for a user's --set of `regularizers` (or a key under it): every method of a bench
    sets the recipe's regularizers itself, so the value would be replaced in every generator cell."""
    from medlt.errors import UsageError

    for s in sets:
        key = s.split("=", 1)[0].strip()
        if key == "regularizers" or key.startswith(("regularizers.", "regularizers[")):
            raise UsageError(f"--set {key}: a bench's regularizers come from --methods (each method sets the "
                             f"recipe's regularizers:), so this value would be replaced; give it as a method, "
                             f"e.g. --methods 'cbdm(weight=0.3,tau=0.5)'")


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
