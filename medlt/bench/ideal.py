"""The perfect-synthesis arm (`ideal`, phantoms only): what a generator that samples the true
class-conditional distribution would add.

On a phantom the true distribution is known: it is the phantom generator itself. The ideal set
follows the synthesis plan of the recipe's quota (the same label vectors and counts as every
method's synthetic set and as the copies control: one plan, drawn with the bench's base recipe
seed), but each planned image is a *new* phantom image of exactly that label vector, written with
another seed (so it shares no image and no patient with the evaluated phantom):
- single-label: a balanced phantom (`write_phantom(per_class=...)`) with at least as many images
  per class as the plan and the judged set use, each image used once;
- multi-label (NIH multi-label, CT-RATE): a phantom whose training split is rendered from the
  planned label vectors themselves (`write_phantom(train_labels=...)`), one image per planned image,
  plus `judged_per_class` one-hot images per class for the judged set (the counterpart of the probe,
  whose multi-label vectors are one-hot too). A balanced phantom lacks most planned co-occurrences,
  and a row "containing the driving class" would carry other labels than the plan. headroom = bAcc(ideal) − bAcc(copies) is
then the most any generator can add over copying at this quota; a method's share of the headroom
closed is (bAcc(method) − bAcc(copies)) / headroom (medlt.bench.table).

Written into DIR (the bench's DIR/ideal/set):
  DIR/phantom/          the ideal phantom (seed `ideal_phantom_seed(...)`)
  DIR/ideal.csv         medlt manifest: every real row (root=data) and one row per planned image
                        (root=manifest, `image` under DIR/phantom, source=ideal), with
                        DIR/ideal.root.txt = the real data.root (`medlt classify
                        --train-manifest DIR/ideal.csv` reads it)
  DIR/manifest.csv      the set the judge scores, in `medlt synth`'s layout (paths relative to
                        DIR): per class `judged_per_class` images not used by ideal.csv (the
                        probe's counterpart, multi-label: one-hot; the quota rows themselves when
                        judged_per_class is 0),
                        source=synthetic so `medlt evaluate --synthetic DIR` reads them like a
                        generator's set; every row is a phantom image, no real patient's.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from medlt.errors import DataError
from medlt.utils.atomic import atomic_write_text
from medlt.utils.seeding import derive_seed


def ideal_phantom_seed(evaluated_seed: int, oracle_seed: int | None = None) -> int:
    """A phantom seed other than the evaluated phantom's and the oracle's (evaluated + 1)."""
    taken = {int(evaluated_seed), int(evaluated_seed) + 1 if oracle_seed is None else int(oracle_seed)}
    s = int(evaluated_seed) + 2
    while s in taken:
        s += 1
    return s


def _csv(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def _one_hot(k: int, c: int) -> tuple[int, ...]:
    return tuple(int(j == c) for j in range(k))


def ideal_request(recipe, table, judged_per_class: int = 0) -> tuple:
    """(plan, write_phantom keyword arguments, marker parameters that must match to reuse a written
    phantom) of the ideal arm; DataError when the set cannot be built (not a phantom, a quota that
    plans nothing, label vectors the phantom cannot render). `medlt bench --dry-run` calls it."""
    from medlt.classify.oracle import phantom_parameters
    from medlt.phantom.write import check_train_labels
    from medlt.synth.generate import make_plan

    params = phantom_parameters(recipe)  # DataError for data that is not a medlt phantom
    fmt = recipe.data.format
    ls = table.label_space
    plan = make_plan(recipe, table)  # the bench's one plan: the base recipe's seed
    if not plan.jobs:
        raise DataError(f"ideal arm: the quota '{recipe.synth.quota}' plans no image, so there is nothing to add")
    if not isinstance(params.get("image_size"), int):
        raise DataError(f"ideal arm: the phantom marker under data.root ({recipe.data.root}) records no image_size, "
                        f"so the ideal phantom cannot match it; write the phantom again with `medlt phantom`")
    seed = ideal_phantom_seed(int(params.get("seed", 0)))
    kw = dict(image_size=int(params["image_size"]), seed=seed)
    if not ls.multi_label:
        planned = np.zeros(ls.num_classes, dtype=np.int64)
        for j in plan.jobs:
            planned[j.driver] += 1
        per_class = int(planned.max()) + int(judged_per_class)
        kw.update(per_class=per_class, per_class_test=1, multi_label=False)
        return plan, kw, {"per_class": per_class, "seed": seed, "image_size": kw["image_size"]}
    vectors = [tuple(int(v) for v in j.label) for j in plan.jobs]
    vectors += [_one_hot(ls.num_classes, c) for c in range(ls.num_classes) for _ in range(int(judged_per_class))]
    multi = fmt == "nih-cxr-lt"
    try:
        _, sha = check_train_labels(fmt, vectors, multi, num_images=None, per_class=None)
    except DataError as e:
        raise DataError(f"ideal arm: {e}") from None
    kw.update(train_labels=vectors, imbalance_ratio=1.0, per_class_val=1, per_class_test=1, test_fraction=0.01)
    if multi:
        kw["multi_label"] = True
    return plan, kw, {"train_labels_sha256": sha, "seed": seed, "image_size": kw["image_size"]}


def _exact_sources(plan, y: np.ndarray, judged_per_class: int) -> tuple[list[int], list[int]]:
    """Multi-label: (for each job the pool row with exactly its label vector, each row once; the
    judged rows: per class `judged_per_class` one-hot rows no job uses)."""
    free: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(y):
        free.setdefault(tuple(int(v) for v in row), []).append(i)
    sources = []
    for j in plan.jobs:
        rows = free.get(tuple(int(v) for v in j.label))
        if not rows:
            raise DataError(f"ideal arm: the ideal phantom has no unused image of planned label vector {list(j.label)}; "
                            f"remove its folder and run again")
        sources.append(rows.pop(0))
    judged = []
    k = y.shape[1]
    for c in range(k):
        rows = free.get(_one_hot(k, c), [])
        if len(rows) < judged_per_class:
            raise DataError(f"ideal arm: the ideal phantom has {len(rows)} unused one-hot image(s) of class {c}, "
                            f"{judged_per_class} needed; remove its folder and run again")
        judged += rows[:judged_per_class]
    return sources, judged


def write_ideal_set(recipe, out_dir: str | Path, *, judged_per_class: int = 0, show_progress: bool = False) -> dict:
    """Write the ideal arm's phantom and manifests into `out_dir` (see the module docstring);
    returns counts. Deterministic: re-running rewrites identical files."""
    import json

    from medlt.bench.copies import plan_backing
    from medlt.classify.oracle import oracle_recipe
    from medlt.cliutils import progress
    from medlt.data.table import load_table
    from medlt.phantom import write_phantom
    from medlt.phantom.write import MARKER
    from medlt.synth.manifest import real_root, real_rows
    from medlt.synth.plan import train_label_matrix

    out = Path(out_dir)
    fmt = recipe.data.format
    table = load_table(recipe)
    ls = table.label_space
    plan, kw, must_match = ideal_request(recipe, table, judged_per_class)
    pdir = out / "phantom"
    have = json.loads((pdir / MARKER).read_text())["parameters"] if (pdir / MARKER).is_file() else {}
    if any(have.get(key) != v for key, v in must_match.items()):
        write_phantom(fmt, pdir, **kw, progress=lambda it, **k: progress(it, disable=not show_progress, **k))
    pool_recipe = oracle_recipe(recipe, pdir)
    pool_table = load_table(pool_recipe)
    train_split = recipe.data.splits.train
    pool_train = pool_recipe.data.splits.train
    y = train_label_matrix(pool_table.frame, ls, pool_train)
    if ls.multi_label:
        pool = real_rows(pool_table.frame, ls, pdir)
        pool = pool[pool["split"] == pool_train].reset_index(drop=True)
        if len(pool) != len(y):
            raise DataError("ideal arm: the ideal phantom's training rows and their labels disagree in number")
        sources, judged_idx = _exact_sources(plan, y, int(judged_per_class))
    else:
        pool, sources = plan_backing(plan, pool_table.frame, ls, pdir, pool_train,
                                     derive_seed(recipe.seed, "ideal-arm"), "ideal arm")

    def as_manifest(rows: pd.DataFrame, prefix: str) -> pd.DataFrame:
        r = rows.copy()
        r["image"] = [f"phantom/{p}" for p in r["image"]]
        r["id"] = [f"{prefix}{n:05d}__{i}" for n, i in enumerate(r["id"])]
        r["patient_id"] = [f"ideal-{p}" for p in r["patient_id"]]
        r["split"] = train_split
        return r

    added = as_manifest(pool.iloc[sources], "ideal")
    added["root"] = "manifest"
    added["source"] = "ideal"
    real = real_rows(table.frame, ls, real_root(table.frame, recipe.data.root))
    atomic_write_text(out / "ideal.root.txt", f"{real_root(table.frame, recipe.data.root)}\n")
    atomic_write_text(out / "ideal.csv", _csv(pd.concat([real, added], ignore_index=True)))
    if judged_per_class > 0 and not ls.multi_label:  # per class, images the ideal training rows did not use
        used = set(sources)
        rng = np.random.default_rng(derive_seed(recipe.seed, "ideal-judged"))
        judged_idx = []
        for c in range(ls.num_classes):
            cand = [i for i in rng.permutation(len(y)) if y[i, c] > 0 and i not in used and i not in judged_idx]
            if len(cand) < judged_per_class:
                raise DataError(f"ideal arm: class '{ls.names[c]}' has {len(cand)} unused phantom images, "
                                f"{judged_per_class} needed")
            judged_idx += [int(i) for i in cand[:judged_per_class]]
    if judged_per_class > 0:
        judged = as_manifest(pool.iloc[judged_idx], "idealjudged")
    else:
        judged = added.copy()
    judged = judged.drop(columns=["root"], errors="ignore")
    judged["source"] = "synthetic"  # read by `medlt evaluate --synthetic` like a generator's set
    judged["seed"] = ""
    atomic_write_text(out / "manifest.csv", _csv(judged))
    return {"ideal_images": len(added), "judged_images": len(judged), "ideal_phantom_seed": kw["seed"],
            "ideal_phantom_per_class": kw.get("per_class"), "ideal_phantom_vectors": len(kw.get("train_labels", []))}
