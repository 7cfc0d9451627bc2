"""Per-group guidance scales for `medlt synth --guidance-from DIR/guidance.json` (written by
`medlt tune-guidance`).

Each synthetic row gets the scale of its class group (head / medium / tail, from the training
counts, as in the plan). Multi-label: the scale of the *rarest* group among the row's positive
labels (tail before medium before head), so a row that carries a tail class is guided like a tail
class. The settings then hold `guidance_scale` as {group: scale} (plan.json, resume check) and
manifest.csv's `guidance_scale` column holds each row's own scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medlt.errors import MedltError
from medlt.synth.jobs import Job
from medlt.utils.checkpoint import file_sha256

RARITY = {"head": 0, "medium": 1, "tail": 2}


def row_group(job: Job, class_groups: Sequence[str]) -> str:
    """The rarest group among the job's positive labels (its driving class when it has none)."""
    positives = [c for c, v in enumerate(job.label) if v] or [job.driver]
    return max((class_groups[c] for c in positives), key=RARITY.__getitem__)


def job_scales(jobs: Sequence[Job], settings: dict[str, Any]) -> list[float | None]:
    """Each job's guidance scale: the one scale, or its group's scale under --guidance-from."""
    w = settings.get("guidance_scale")
    if isinstance(w, dict):
        groups = settings["guidance_groups"]
        return [float(w[row_group(j, groups)]) for j in jobs]
    return [None if w is None else float(w)] * len(jobs)


def check_tuned_groups(path: str | Path, data: dict, plan, group_thresholds: Sequence[int] | None) -> None:
    """MedltError when the guidance file was tuned under other data.group_thresholds, other classes or
    other class groups than this plan's (its scales are per group: a class whose group moved would
    silently get another group's scale)."""
    tuned = data.get("group_thresholds")
    if group_thresholds is not None and tuned is not None and list(tuned) != list(group_thresholds):
        raise MedltError(f"--guidance-from {path}: tuned under data.group_thresholds {list(tuned)}, this recipe "
                         f"has {list(group_thresholds)}; re-run `medlt tune-guidance` with this recipe")
    tuned_groups = data.get("class_groups")
    if not isinstance(tuned_groups, dict):
        return
    names = [c.name for c in plan.classes]
    if list(tuned_groups) != names:
        raise MedltError(f"--guidance-from {path}: tuned for classes {list(tuned_groups)[:5]}..., this recipe has "
                         f"{names[:5]}...; re-run `medlt tune-guidance` with this recipe")
    moved = [f"{c.name} ({tuned_groups[c.name]} -> {c.group})" for c in plan.classes if tuned_groups[c.name] != c.group]
    if moved:
        raise MedltError(f"--guidance-from {path}: {len(moved)} class(es) are in another group than when it was "
                         f"tuned, e.g. {', '.join(moved[:3])}; re-run `medlt tune-guidance` with this recipe")


def tuned_sampling_warning(path: str | Path, data: dict, settings: dict[str, Any]) -> str | None:
    """A warning when the guidance file was tuned with another sampler or step count than this run
    samples with (None when they agree or the file does not say). A warning, not a refusal: tuning at
    fewer steps is a deliberate way to save time, but the best scale can move with the sampler and
    the step count, so the user is told which setting differs and how to tune for this run."""
    tuned = {"sampler": data.get("sampler"), "steps": data.get("steps")}
    now = {"sampler": settings.get("sampler"), "steps": settings.get("steps")}
    differs = [k for k in tuned if tuned[k] is not None and str(tuned[k]) != str(now[k])]
    if not differs:
        return None
    return (f"--guidance-from {path}: its scales were tuned with sampler {tuned['sampler']} at {tuned['steps']} "
            f"steps, this run samples with {now['sampler']} at {now['steps']} steps; they are used anyway (a "
            f"warning, not a refusal: tuning with fewer steps saves time on purpose), but the best scale can "
            f"change with the {' and '.join('step count' if k == 'steps' else k for k in differs)}: run `medlt "
            f"tune-guidance --sampler {now['sampler']} --steps {now['steps']}` to tune for this run")


def apply_guidance_file(settings: dict[str, Any], path: str | Path, plan,
                        group_thresholds: Sequence[int] | None = None) -> list[str]:
    """Put the file's per-group scales into `settings` (MedltError when a group with jobs has none, or
    when the file was tuned under other group thresholds, classes or class groups). Returns the
    warnings for the user (tuned with another sampler or step count: `tuned_sampling_warning`)."""
    from medlt.diffusion.tune_guidance import load_guidance_scales

    scales, data = load_guidance_scales(path)
    check_tuned_groups(path, data, plan, group_thresholds)
    groups = [c.group for c in plan.classes]
    needed = {row_group(j, groups) for j in plan.jobs}
    missing = sorted(needed - set(scales), key=RARITY.__getitem__)
    if missing:
        classes = [c.name for c in plan.classes if c.group in missing]
        raise MedltError(f"--guidance-from {path}: no scale for group(s) {missing} (classes {classes[:5]}); "
                         f"re-run `medlt tune-guidance` with this recipe")
    settings["guidance_scale"] = {g: scales[g] for g in sorted(needed, key=RARITY.__getitem__)}
    settings["guidance_groups"] = groups
    settings["guidance_from"] = {"path": str(Path(path).resolve()), "sha256": file_sha256(path),
                                 "tuned_for_checkpoint_sha256": (data.get("generator") or {}).get("checkpoint_sha256"),
                                 "tuned_sampler": data.get("sampler"), "tuned_steps": data.get("steps")}
    warning = tuned_sampling_warning(path, data, settings)
    return [warning] if warning else []


def check_tuned_for(settings: dict[str, Any], checkpoint_sha256: str) -> None:
    """MedltError when the guidance file was tuned on another generator checkpoint."""
    src = settings.get("guidance_from")
    if not src:
        return
    tuned = src.get("tuned_for_checkpoint_sha256")
    if tuned and tuned != checkpoint_sha256:
        raise MedltError(f"--guidance-from {src['path']} was tuned for checkpoint sha256 {tuned[:12]}..., this "
                         f"checkpoint is {checkpoint_sha256[:12]}...; run `medlt tune-guidance` on this checkpoint")
