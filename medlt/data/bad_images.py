"""Bad images met by a run: screened before the run starts, named when one fails mid-run, and
listed in the run folder when the recipe says `data.on_bad_image: skip`.

Screening (`screen_frame`), done when a dataset is built (medlt.data.loaders), so before any run
folder is created:
- `data.on_bad_image: error` (default): a cheap check of every row's file (header and last bytes,
  medlt.data.io.probe.probe_image); files it suspects are fully decoded to confirm. The first bad
  file stops the run with one line "csv:row N: 'id': path: reason (...)".
- `data.on_bad_image: skip`: every row's file is fully decoded once (like `medlt data validate`),
  the bad ones are left out of the dataset and remembered; `write_skipped_images(run_dir)` writes
  them to RUN/skipped_images.csv and `count_skipped_images(run_dir)` reads the count back (for the
  report).
A file that still fails while the run reads it (something the cheap check cannot see) raises
BadImageError with the file and manifest row, whatever the mode: a skip list is never extended
silently mid-run.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from medlt.errors import DataError, MedltError

SKIPPED_FILE = "skipped_images.csv"
_WORKER_PREFIX = "Caught BadImageError"


@dataclass(frozen=True)
class BadImage:
    """One unusable image: where its row is (label CSV, 1-based data row), its id, split, file and why."""

    csv_file: str
    csv_row: int
    split: str
    id: str
    image: str
    reason: str

    def __str__(self) -> str:
        return f"{self.csv_file}:row {self.csv_row}: {self.id!r}: {self.image}: {self.reason}"


class BadImageError(DataError):
    """An image could not be used; the message names the file and its manifest row.

    Raised inside a DataLoader worker, torch re-raises it in the main process as
    BadImageError("Caught BadImageError in DataLoader worker ...\\nOriginal Traceback ...");
    the constructor keeps only the original one-line message then."""

    def __init__(self, message: str):
        message = str(message)
        if message.startswith(_WORKER_PREFIX):
            last = [ln for ln in message.strip().splitlines() if ln.strip()][-1]
            _, sep, rest = last.partition("BadImageError: ")
            message = rest if sep else last
        super().__init__(message)


def cause_message(exc: BaseException) -> str:
    """The most useful one-line text of an exception raised by a MONAI pipeline: the innermost
    medlt error's message if there is one (MONAI wraps them in RuntimeError("applying transform
    ...")), else the innermost exception's type and first line."""
    chain, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, MedltError):
            return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    inner = chain[-1]
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0]}" if text else type(inner).__name__


def item_error(origin: tuple[str, int, str], image: str, exc: BaseException) -> BadImageError:
    """BadImageError for a dataset item that failed to load (origin = (csv_file, csv_row, id))."""
    csv_file, csv_row, ident = origin
    msg = cause_message(exc)
    if msg.startswith(f"{image}: "):
        msg = msg[len(image) + 2:]
    return BadImageError(f"{csv_file}:row {csv_row}: {ident!r}: {image}: {msg} (cannot load it; "
                         f"`medlt data validate` lists every bad image, data.on_bad_image=skip leaves "
                         f"them out)")


# --------------------------------------------------------------------------------- screening
def _verdict(path: str, modality: str, thorough: bool) -> str | None:
    from medlt.data.io.probe import decode_problem, probe_image

    if thorough:
        return decode_problem(path, modality)
    res = probe_image(path, modality)
    if res is None:
        return None
    kind, reason = res
    if kind == "bad":
        return reason
    return decode_problem(path, modality)  # a suspect: only a failed full decode rejects it


def find_bad_images(frame: pd.DataFrame, modality: str, *, thorough: bool, workers: int = 4,
                    show_progress: bool = False) -> list[BadImage]:
    """Bad images among the rows of `frame` (canonical table rows), in row order. `thorough`
    decodes every file; otherwise headers are checked and only suspects decoded."""
    from medlt.cliutils import progress

    paths = [str(p) for p in frame["image"]]

    def one(i: int):
        return i, _verdict(paths[i], modality, thorough)

    found: list[BadImage] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = progress(pool.map(one, range(len(paths))), total=len(paths), unit="img",
                           desc="decode images" if thorough else "check images",
                           disable=not show_progress or len(paths) < 500)
        for i, reason in results:
            if reason is not None:
                found.append(BadImage(str(frame["csv_file"].iat[i]), int(frame["csv_row"].iat[i]),
                                      str(frame["split"].iat[i]), str(frame["id"].iat[i]), paths[i], reason))
    return found


def screen_frame(frame: pd.DataFrame, modality: str, on_bad_image: str, *, workers: int = 4,
                 show_progress: bool = True) -> pd.DataFrame:
    """The rows of `frame` whose images are usable. on_bad_image "error": BadImageError naming the
    first bad file; "skip": bad rows dropped and recorded (see `skipped_images`)."""
    if len(frame) == 0:
        return frame
    if on_bad_image not in ("error", "skip"):
        raise DataError(f"data.on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
    bad = find_bad_images(frame, modality, thorough=on_bad_image == "skip", workers=workers,
                          show_progress=show_progress)
    if not bad:
        return frame
    if on_bad_image == "error":
        more = f"; {len(bad) - 1} more bad image(s)" if len(bad) > 1 else ""
        raise BadImageError(f"{bad[0]}{more} (run `medlt data validate` to list them all, or set "
                            f"data.on_bad_image=skip to leave them out)")
    record_skipped(bad)
    drop = {(b.csv_file, b.csv_row) for b in bad}
    keep = [(str(f), int(r)) not in drop for f, r in zip(frame["csv_file"], frame["csv_row"], strict=True)]
    return frame[keep].reset_index(drop=True)


# ------------------------------------------------------------------------ skipped-image record
_LOCK = threading.Lock()
_SKIPPED: dict[tuple[str, int], BadImage] = {}


def record_skipped(bad: Iterable[BadImage]) -> None:
    """Remember images this process left out (data.on_bad_image=skip)."""
    with _LOCK:
        for b in bad:
            _SKIPPED.setdefault((b.csv_file, b.csv_row), b)


def skipped_images() -> list[BadImage]:
    """Every image this process left out so far, ordered by label file and row."""
    with _LOCK:
        return sorted(_SKIPPED.values(), key=lambda b: (b.csv_file, b.csv_row))


def clear_skipped() -> None:
    """Forget the recorded images (tests; a process running several commands)."""
    with _LOCK:
        _SKIPPED.clear()


def write_skipped_images(run_dir: str | Path) -> Path | None:
    """Write RUN/skipped_images.csv (csv_file, csv_row, split, id, image, reason) atomically when
    this process skipped any image; returns its path, or None (and writes nothing) when none was."""
    from medlt.utils.atomic import atomic_write_text

    bad = skipped_images()
    if not bad:
        return None
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[f.name for f in fields(BadImage)], lineterminator="\n")
    w.writeheader()
    for b in bad:
        w.writerow(asdict(b))
    return atomic_write_text(Path(run_dir) / SKIPPED_FILE, buf.getvalue())


def count_skipped_images(run_dir: str | Path) -> int:
    """Images a run left out (rows of RUN/skipped_images.csv; 0 when the file is absent)."""
    path = Path(run_dir) / SKIPPED_FILE
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def skipped_image_counts(evaluation_dir: str | Path, classifier_run: str | Path) -> dict[str, int]:
    """Images left out under data.on_bad_image=skip by this evaluation and by the evaluated
    classifier's training run (RUN, or RUN/checkpoints/<name>.pt)."""
    run = Path(classifier_run)
    return {"evaluation": count_skipped_images(evaluation_dir),
            "classifier training": count_skipped_images(run if run.is_dir() else run.parent.parent)}
