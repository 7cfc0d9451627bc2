"""The synthesis plan: per-class real / target / to-generate counts, the job list, and DIR/plan.json.

`build_plan` is a pure function of the training labels, the quota and the recipe seed (see
`medlt.synth.jobs` for the single- and multi-label rules). Multi-label: which label vectors are
planned is drawn with the *plan seed*, the recipe seed unless a caller fixes another (`medlt bench`
fixes its base recipe's seed, so every generator seed fills the copies control's plan); the noise
seeds always come from the recipe seed. plan.json records the counts, the
settings that determine the pixels (checkpoint hash, guidance, sampler, steps, batch size, output
format, filter) and a fingerprint of the job list; a re-run into the same folder with different
settings is refused instead of mixing two kinds of images.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlt.data.labels import LabelSpace
from medlt.errors import DataError, MedltError
from medlt.synth.jobs import Job, jobs_fingerprint, multi_label_jobs, single_label_jobs
from medlt.synth.quotas import Quota, class_targets, parse_quota
from medlt.utils.atomic import atomic_write_text

PLAN_VERSION = 1
SINGLE_LABEL_RULE = "single-label: target - real images per class, round-robin over classes"
MULTI_LABEL_RULE = (
    "multi-label greedy: repeatedly take the most deficient class and a real training label vector "
    "containing it that adds no positive to a class already at its target (drawn by frequency, "
    "seeded), else its one-hot vector; every class ends exactly at its target (zero over-shoot)")


@dataclass(frozen=True)
class ClassPlan:
    name: str
    real: int
    target: int
    to_generate: int  # synthetic images carrying this class (multi-label: positives added)
    group: str


@dataclass
class SynthPlan:
    label_space: LabelSpace
    quota: Quota
    recipe_seed: int
    classes: list[ClassPlan]
    jobs: list[Job]
    rule: str
    #: the seed the multi-label vectors were drawn with (the recipe seed unless a caller fixed another)
    plan_seed: int | None = None
    rejections: dict[str, int] = field(default_factory=dict)
    near_copies: dict[str, int] = field(default_factory=dict)  # of the rejections: near-copies dropped

    @property
    def num_images(self) -> int:
        return len(self.jobs)


def train_label_matrix(frame: pd.DataFrame, label_space: LabelSpace, train_split: str) -> np.ndarray:
    """(N, K) 0/1 matrix of the training rows' labels (class columns named as label_space.names)."""
    if "split" not in frame.columns:
        raise DataError("table has no 'split' column")
    missing = [n for n in label_space.names if n not in frame.columns]
    if missing:
        raise DataError(f"table lacks class column(s) {missing}")
    rows = frame[frame["split"].astype(str) == str(train_split)]
    if rows.empty:
        raise DataError(f"no training rows: no row has split '{train_split}' "
                        f"(splits present: {sorted(frame['split'].astype(str).unique())})")
    return rows[list(label_space.names)].to_numpy(dtype=np.int64)


def build_plan(label_space: LabelSpace, train_labels: np.ndarray, quota: str | Quota, recipe_seed: int,
               group_thresholds: Sequence[int], plan_seed: int | None = None) -> SynthPlan:
    q = parse_quota(quota)
    y = np.asarray(train_labels, dtype=np.int64).reshape(-1, label_space.num_classes)
    real = [int(v) for v in y.sum(axis=0)]
    targets = class_targets(real, q)
    names = list(label_space.names)
    if label_space.multi_label:
        jobs = multi_label_jobs(names, y, targets, recipe_seed, plan_seed)
        rule = MULTI_LABEL_RULE
    else:
        jobs = single_label_jobs(names, [t - r for t, r in zip(targets, real, strict=True)], recipe_seed)
        rule = SINGLE_LABEL_RULE
    added = np.zeros(len(names), np.int64)
    for j in jobs:
        added += np.asarray(j.label, np.int64)
    groups = label_space.groups(real, tuple(group_thresholds))
    classes = [ClassPlan(n, real[i], targets[i], int(added[i]), groups[i]) for i, n in enumerate(names)]
    ps = int(recipe_seed if plan_seed is None else plan_seed)
    return SynthPlan(label_space, q, int(recipe_seed), classes, jobs, rule, plan_seed=ps)


def plan_to_dict(plan: SynthPlan, settings: dict[str, Any]) -> dict[str, Any]:
    vectors = Counter("".join(map(str, j.label)) for j in plan.jobs) if plan.label_space.multi_label else None
    d: dict[str, Any] = {
        "version": PLAN_VERSION,
        "quota": str(plan.quota),
        "recipe_seed": plan.recipe_seed,
        "plan_seed": plan.recipe_seed if plan.plan_seed is None else plan.plan_seed,
        "label_space": plan.label_space.to_dict(),
        "rule": plan.rule,
        "num_images": plan.num_images,
        "jobs_sha256": jobs_fingerprint(plan.jobs),
        "settings": settings,
        "classes": [
            {"name": c.name, "group": c.group, "real": c.real, "target": c.target,
             "to_generate": c.to_generate, "after": c.real + c.to_generate,
             "rejected": int(plan.rejections.get(c.name, 0))}
            for c in plan.classes
        ],
        "rejections": {k: int(v) for k, v in plan.rejections.items()},
        "near_copies_dropped": {k: int(v) for k, v in plan.near_copies.items()},
    }
    if vectors is not None:
        d["label_vectors"] = dict(sorted(vectors.items(), key=lambda kv: (-kv[1], kv[0])))
    return d


def write_plan(path: str | Path, plan: SynthPlan, settings: dict[str, Any]) -> Path:
    return atomic_write_text(path, json.dumps(plan_to_dict(plan, settings), indent=2) + "\n")


#: settings that change pixels or file names; a folder started with other values is refused
PIXEL_SETTINGS = ("checkpoint_sha256", "guidance_scale", "sampler", "steps", "batch_size",
                  "output_format", "filter", "near_copies", "decode", "selection", "sampling_options")


def _recorded(settings: dict[str, Any], key: str) -> Any:
    """A setting as recorded; no `sampling_options` (a folder started before they were recorded, or
    a generator without them) means the options' defaults."""
    value = settings.get(key)
    if key == "sampling_options" and value is None:
        from medlt.diffusion.sampling import SamplerOptions

        return SamplerOptions().to_dict()
    return value


def check_resume(path: str | Path, plan: SynthPlan, settings: dict[str, Any]) -> bool:
    """True when `path` holds a plan.json of a real run made with the same plan and settings (a
    resume); False when there is none or it came from --dry-run; MedltError on a mismatch."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable plan ({e.__class__.__name__}); remove it or use another --out") from None
    old_settings = old.get("settings") or {}
    if old_settings.get("checkpoint_sha256") is None:  # a dry-run plan: nothing generated yet
        return False
    if old.get("jobs_sha256") != jobs_fingerprint(plan.jobs):
        raise MedltError(f"{path}: this folder holds a different plan (quota '{old.get('quota')}', "
                         f"{old.get('num_images')} images); use a new --out or the same recipe/quota")
    for k in PIXEL_SETTINGS:
        if _recorded(old_settings, k) != _recorded(settings, k):
            raise MedltError(f"{path}: this folder was started with {k}={_recorded(old_settings, k)!r}, now "
                             f"{_recorded(settings, k)!r}; use the same value to resume or a new --out")
    return True


def plan_table(plan: SynthPlan, title: str | None = None):
    """rich Table: class, group, real, target, to generate, after."""
    from rich.table import Table

    t = Table(title=title or f"synthesis plan: quota {plan.quota}, {plan.num_images} images")
    for col, justify in (("class", "left"), ("group", "left"), ("real", "right"), ("target", "right"),
                         ("to generate", "right"), ("after", "right")):
        t.add_column(col, justify=justify)
    for c in plan.classes:
        t.add_row(c.name, c.group, str(c.real), str(c.target), str(c.to_generate),
                  str(c.real + c.to_generate))
    t.add_row("[b]total images[/b]", "", "", "", f"[b]{plan.num_images}[/b]", "")
    return t
