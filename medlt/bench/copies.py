"""The copies control: the real training set plus oversampled copies of real training images, as
many per label vector as the synthetic set adds (the synthesis plan's jobs).

Written as one medlt manifest (DIR/copies.csv, format `manifest`): every real row of the recipe's
table (root=data, source=real) and, per planned synthetic image, one extra training row pointing at
an existing real training file with the same label vector (root=data, source=copy, id
`copy<NNNNN>__<real id>`); no image file is written. Which real image backs each copy: a seeded
permutation of the real training rows with that label vector, cycled, so copies spread evenly
(every image is copied floor or ceil of n_copies / n_real times). Multi-label: a planned vector
with no real row (the plan's one-hot fallback for a class whose real vectors all carry a class
already at its target) falls back to the rows containing the planned (driving) class with the
fewest other labels, so those copy rows carry other labels than the plan; `off_plan_rows` counts
them and the copies cell records the number (cell.json `copies_off_plan`). Every other arm (ideal,
every generator seed) fills the plan exactly.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from medlt.errors import DataError
from medlt.utils.atomic import atomic_write_text
from medlt.utils.seeding import derive_seed


def plan_sources(plan, pool_labels: np.ndarray, seed: int, names) -> list[int]:
    """For each job of `plan`, the row of `pool_labels` ((N, K) 0/1) whose image backs it: a row with
    the job's label vector (multi-label without one: a row containing the job's driving class and
    as few other labels as any such row),
    from a seeded permutation of those rows, cycled, so every pool image backs floor or ceil of
    n_jobs / n_rows jobs. DataError when a class has no row at all."""
    by_vec: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(pool_labels):
        by_vec.setdefault(tuple(int(v) for v in row), []).append(i)
    rng = np.random.default_rng(seed)
    pools: dict[tuple, list[int]] = {}
    used: dict[tuple, int] = {}
    out = []
    for job in plan.jobs:
        key = tuple(int(v) for v in job.label)
        cand = by_vec.get(key)
        if not cand:  # the rows containing the driving class with the fewest other labels
            having = [i for i in range(len(pool_labels)) if pool_labels[i, job.driver] > 0]
            fewest = min((int(pool_labels[i].sum()) for i in having), default=0)
            cand = [i for i in having if int(pool_labels[i].sum()) == fewest]
            key = ("driver", job.driver)
        if not cand:
            raise DataError(f"class '{names[job.driver]}' has no training image to draw from")
        if key not in pools:
            pools[key] = [cand[j] for j in rng.permutation(len(cand))]
            used[key] = 0
        out.append(pools[key][used[key] % len(pools[key])])
        used[key] += 1
    return out


def plan_backing(plan, frame: pd.DataFrame, label_space, root: Path, train_split: str, seed: int,
                 what: str) -> tuple[pd.DataFrame, list[int]]:
    """(training rows of `frame` in manifest form, relative to `root`; for each job of `plan` the
    index of the row backing it, by plan_sources). `what` names the arm in errors."""
    from medlt.synth.manifest import real_rows
    from medlt.synth.plan import train_label_matrix

    rows = real_rows(frame, label_space, root)
    train = rows[rows["split"] == train_split].reset_index(drop=True)
    y = train_label_matrix(frame, label_space, train_split)
    if len(train) != len(y):
        raise DataError(f"{what}: the training rows and their labels disagree in number")
    try:
        return train, plan_sources(plan, y, seed, label_space.names)
    except DataError as e:
        raise DataError(f"{what}: {e}") from None


def off_plan_rows(plan, copies: pd.DataFrame, names) -> int:
    """How many planned images the copy rows of `copies` (source=copy) do not fill with their exact
    label vector: the sum over planned vectors of (planned - copied with that vector), at least 0."""
    from collections import Counter

    planned = Counter(tuple(int(v) for v in j.label) for j in plan.jobs)
    rows = copies[copies["source"] == "copy"][list(names)].to_numpy(dtype=np.int64)
    got = Counter(tuple(int(v) for v in r) for r in rows)
    return int(sum(max(0, n - got.get(v, 0)) for v, n in planned.items()))


def copies_frame(recipe, table, quota: str | None = None) -> pd.DataFrame:
    """Real rows + copy rows (manifest columns) for `recipe`'s training table and synth quota."""
    from medlt.synth.generate import make_plan
    from medlt.synth.manifest import real_root, real_rows

    ls = table.label_space
    plan = make_plan(recipe, table, quota)
    root = real_root(table.frame, recipe.data.root)
    real = real_rows(table.frame, ls, root)
    train_split = recipe.data.splits.train
    train, sources = plan_backing(plan, table.frame, ls, root, train_split,
                                  derive_seed(recipe.seed, "copies-control"), "copies control")
    rows = []
    for n, i in enumerate(sources):
        src = train.iloc[i]
        r = src.copy()
        r["id"] = f"copy{n:05d}__{src['id']}"
        r["source"] = "copy"
        r["split"] = train_split
        rows.append(r)
    copies = pd.DataFrame(rows, columns=real.columns)
    return pd.concat([real, copies], ignore_index=True)


def write_copies_manifest(recipe, table, out_dir: str | Path, quota: str | None = None) -> Path:
    """DIR/copies.csv (atomic) and DIR/copies.root.txt (the real data.root, which
    `medlt classify --train-manifest` reads). Returns the manifest's path."""
    from medlt.synth.manifest import real_root

    out_dir = Path(out_dir)
    frame = copies_frame(recipe, table, quota)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    atomic_write_text(out_dir / "copies.root.txt", f"{real_root(table.frame, recipe.data.root)}\n")
    return atomic_write_text(out_dir / "copies.csv", buf.getvalue())
