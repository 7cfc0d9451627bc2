"""The perfect-synthesis arm (`ideal`, phantoms only): what a generator that samples the true
class-conditional distribution would add.

On a phantom the true distribution is known: it is the phantom generator itself. The ideal set
follows the synthesis plan of the recipe's quota (the same label vectors and counts as every
method's synthetic set and as the copies control), but each planned image is a *new* phantom
image of that label vector, drawn from a balanced phantom written with another seed (so it shares
no image and no patient with the evaluated phantom). headroom = bAcc(ideal) − bAcc(copies) is
then the most any generator can add over copying at this quota; a method's share of the headroom
closed is (bAcc(method) − bAcc(copies)) / headroom (medlt.bench.table).

Written into DIR (the bench's DIR/ideal/set):
  DIR/phantom/          the balanced phantom (`write_phantom(per_class=...)`, seed
                        `ideal_phantom_seed(...)`)
  DIR/ideal.csv         medlt manifest: every real row (root=data) and one row per planned image
                        (root=manifest, `image` under DIR/phantom, source=ideal), with
                        DIR/ideal.root.txt = the real data.root (`medlt classify
                        --train-manifest DIR/ideal.csv` reads it)
  DIR/manifest.csv      the set the judge scores, in `medlt synth`'s layout (paths relative to
                        DIR): per class `judged_per_class` images not used by ideal.csv (the
                        probe's counterpart; the quota rows themselves when judged_per_class is 0),
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


def write_ideal_set(recipe, out_dir: str | Path, *, judged_per_class: int = 0, show_progress: bool = False) -> dict:
    """Write the ideal arm's phantom and manifests into `out_dir` (see the module docstring);
    returns counts. Deterministic: re-running rewrites identical files."""
    from medlt.bench.copies import plan_backing
    from medlt.classify.oracle import oracle_recipe, phantom_parameters
    from medlt.cliutils import progress
    from medlt.data.table import load_table
    from medlt.phantom import write_phantom
    from medlt.phantom.write import MARKER
    from medlt.synth.generate import make_plan
    from medlt.synth.manifest import real_root, real_rows
    from medlt.synth.plan import train_label_matrix

    out = Path(out_dir)
    params = phantom_parameters(recipe)  # DataError for data that is not a medlt phantom
    fmt = recipe.data.format
    table = load_table(recipe)
    ls = table.label_space
    plan = make_plan(recipe, table)
    if not plan.jobs:
        raise DataError(f"ideal arm: the quota '{recipe.synth.quota}' plans no image, so there is nothing to add")
    planned = np.zeros(ls.num_classes, dtype=np.int64)
    for j in plan.jobs:
        planned[j.driver] += 1
    per_class = int(planned.max()) + int(judged_per_class)
    seed = ideal_phantom_seed(int(params.get("seed", 0)))
    pdir = out / "phantom"
    kw = dict(per_class=per_class, image_size=int(params["image_size"]), seed=seed, per_class_test=1,
              multi_label=bool(params.get("multi_label", False)) and fmt == "nih-cxr-lt")
    import json

    have = json.loads((pdir / MARKER).read_text())["parameters"] if (pdir / MARKER).is_file() else {}
    if not (have.get("per_class") == per_class and have.get("seed") == seed
            and have.get("image_size") == kw["image_size"]):
        write_phantom(fmt, pdir, **kw, progress=lambda it, **k: progress(it, disable=not show_progress, **k))
    pool_recipe = oracle_recipe(recipe, pdir)
    pool_table = load_table(pool_recipe)
    train_split = recipe.data.splits.train
    pool, sources = plan_backing(plan, pool_table.frame, ls, pdir, pool_recipe.data.splits.train,
                                 derive_seed(recipe.seed, "ideal-arm"), "ideal arm")
    y = train_label_matrix(pool_table.frame, ls, pool_recipe.data.splits.train)

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
    if judged_per_class > 0:  # per class, images the ideal training rows did not use
        used = set(sources)
        rng = np.random.default_rng(derive_seed(recipe.seed, "ideal-judged"))
        judged_idx: list[int] = []
        for c in range(ls.num_classes):
            cand = [i for i in rng.permutation(len(y)) if y[i, c] > 0 and i not in used and i not in judged_idx]
            if len(cand) < judged_per_class:
                raise DataError(f"ideal arm: class '{ls.names[c]}' has {len(cand)} unused phantom images, "
                                f"{judged_per_class} needed")
            judged_idx += [int(i) for i in cand[:judged_per_class]]
        judged = as_manifest(pool.iloc[judged_idx], "idealjudged")
    else:
        judged = added.copy()
    judged = judged.drop(columns=["root"], errors="ignore")
    judged["source"] = "synthetic"  # read by `medlt evaluate --synthetic` like a generator's set
    judged["seed"] = ""
    atomic_write_text(out / "manifest.csv", _csv(judged))
    return {"ideal_images": len(added), "judged_images": len(judged), "ideal_phantom_seed": seed,
            "ideal_phantom_per_class": per_class}
