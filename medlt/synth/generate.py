"""`medlt synth` as a function: plan, generate in fixed batches, write, manifest.

Resume and sharding rules (see `medlt.synth.jobs` for why the bytes do not depend on them):
  - the job list and its batches are a pure function of (training labels, quota, recipe seed,
    batch size); rank r of W generates batches i with i % W == r;
  - a batch whose files all exist is skipped; a partly written batch is generated again (same
    batch, same seeds -> same pixels) and only its missing files are written;
  - every file is written atomically (temporary name, then rename), so a SIGKILL leaves complete
    files only; leftover temporary files (".*.tmp") are removed at the next start;
  - with a filter (the quality filter, --drop-near-copies, or both), a batch counts as done once its
    record in DIR/.synth/filter/ exists (it lists the batch's rejected ids, and why near-copies were
    dropped); rejected images are replaced in further rounds by jobs with the same key and the next
    indices (so new seeds), until every quota is met or `synth.filter_max_rounds` is used up (then an
    error names the classes left short, and DIR/dropped.csv is written all the same). manifest.csv then records each row's `redraw_attempt` and
    the id it `replaces`; DIR/dropped.csv lists every dropped image and why.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlt.errors import CheckpointError, DataError, MedltError, RecipeError, UsageError
from medlt.recipe.diffusion import SAMPLERS_BY_OBJECTIVE
from medlt.synth.guidance import apply_guidance_file, check_tuned_for, job_scales
from medlt.synth.jobs import Job, batches, rank_batches, replacement_jobs
from medlt.synth.manifest import write_dropped, write_manifests, write_merged_recipe
from medlt.synth.plan import SynthPlan, build_plan, check_resume, train_label_matrix, write_plan
from medlt.synth.quotas import parse_quota
from medlt.synth.writers import OutputLayout, ct_output_spacing, cxr_output_spacing, resolve_layout
from medlt.utils.atomic import atomic_write_text

STATE_DIR = ".synth"


@dataclass
class SynthResult:
    out_dir: Path
    plan: SynthPlan
    settings: dict[str, Any]
    written: int = 0  # files written by this process
    skipped_batches: int = 0
    generated_batches: int = 0
    final_jobs: list[Job] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)  # filters: the images left out (DIR/dropped.csv)
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # for the user (stderr), e.g. a guidance file tuned otherwise


def sampling_settings(recipe, *, guidance_scale: float | None = None, sampler: str | None = None,
                      steps: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """CLI values override recipe.sampling / recipe.synth; a bad one is a UsageError (exit 2) naming
    its option (a recipe sampler that does not fit the objective: a RecipeError naming the key)."""
    if guidance_scale is not None and not (math.isfinite(float(guidance_scale)) and float(guidance_scale) >= 0):
        raise UsageError(f"--guidance must be a number >= 0, got {guidance_scale}")
    s = {
        "guidance_scale": float(recipe.sampling.guidance_scale if guidance_scale is None else guidance_scale),
        "sampler": str(recipe.sampling.sampler if sampler is None else sampler),
        "steps": int(recipe.sampling.num_inference_steps if steps is None else steps),
        "batch_size": int(recipe.synth.batch_size if batch_size is None else batch_size),
    }
    fits = SAMPLERS_BY_OBJECTIVE[recipe.diffusion.objective]
    if s["sampler"] not in fits:
        where, error = ("--sampler", UsageError) if sampler is not None else ("recipe key 'sampling.sampler'",
                                                                              RecipeError)
        raise error(f"{where} '{s['sampler']}' does not fit diffusion.objective={recipe.diffusion.objective}; "
                    f"choose one of: {', '.join(fits)}")
    if s["steps"] < 1:
        raise UsageError(f"--steps must be >= 1, got {s['steps']}")
    if s["batch_size"] < 1:
        raise UsageError(f"--batch-size must be >= 1, got {s['batch_size']}")
    return s


def make_plan(recipe, table, quota: str | None = None, plan_seed: int | None = None) -> SynthPlan:
    """The synthesis plan; `plan_seed` fixes the multi-label vectors' seed (default: recipe.seed)."""
    y = train_label_matrix(table.frame, table.label_space, recipe.data.splits.train)
    return build_plan(table.label_space, y, quota or recipe.synth.quota, recipe.seed,
                      recipe.data.group_thresholds, plan_seed)


def _real_run_plan(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("settings", {}).get("checkpoint_sha256") is not None
    except (OSError, ValueError, AttributeError):
        return False


def _clean_stale_tmp(out_dir: Path) -> int:
    n = 0
    for p in out_dir.rglob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def _labels_tensor(batch: Sequence[Job], multi_label: bool):
    import torch

    if multi_label:
        return torch.tensor([j.label for j in batch], dtype=torch.float32)
    return torch.tensor([j.driver for j in batch], dtype=torch.int64)


def _confidence(proba: np.ndarray, batch: Sequence[Job], multi_label: bool) -> np.ndarray:
    """Single-label: p(intended class). Multi-label: min over the intended positives."""
    if multi_label:
        lab = np.asarray([j.label for j in batch], dtype=bool)
        return np.where(lab, proba, np.inf).min(axis=1)
    return proba[np.arange(len(batch)), [j.driver for j in batch]]


class _Runner:
    def __init__(self, out_dir: Path, generator, layout: OutputLayout, settings: dict[str, Any],
                 multi_label: bool, rank: int, world_size: int, show_progress: bool,
                 classifier=None, min_confidence: float | None = None, near_copy=None):
        self.out_dir, self.gen, self.layout, self.settings = out_dir, generator, layout, settings
        self.multi_label, self.rank, self.world = multi_label, rank, world_size
        self.show_progress = show_progress
        self.classifier, self.min_confidence = classifier, min_confidence
        self.near_copy = near_copy  # medlt.synth.near_copies.NearCopyFilter
        self.written = self.skipped = self.generated = 0

    @property
    def filtering(self) -> bool:
        return self.classifier is not None or self.near_copy is not None

    def _record_path(self, batch: Sequence[Job]) -> Path:
        return self.out_dir / STATE_DIR / "filter" / f"{batch[0].id}.json"

    def batch_done(self, batch: Sequence[Job]) -> bool:
        if self.filtering:
            return self._record_path(batch).is_file()
        return all((self.out_dir / self.layout.relpath(j)).is_file() for j in batch)

    def rejected_in(self, batch: Sequence[Job]) -> list[str]:
        return list(json.loads(self._record_path(batch).read_text())["rejected"])

    def near_copies_in(self, batch: Sequence[Job]) -> dict[str, dict]:
        """id -> {nearest_real_id, ratio, exact_copy} of the batch's images dropped as near-copies."""
        return dict(json.loads(self._record_path(batch).read_text()).get("near_copies", {}))

    def _generate(self, batch: Sequence[Job]) -> np.ndarray:
        w = self.settings["guidance_scale"]
        x = self.gen.generate(_labels_tensor(batch, self.multi_label), [j.seed for j in batch],
                              guidance_scale=job_scales(batch, self.settings) if isinstance(w, dict) else w,
                              num_inference_steps=self.settings["steps"], sampler=self.settings["sampler"])
        x = x.detach().float().cpu().numpy()
        if x.shape[0] != len(batch):
            raise MedltError(f"generator returned {x.shape[0]} images for a batch of {len(batch)}")
        return x

    def _images(self, todo: Sequence[list[Job]]) -> Iterator[None]:
        import torch

        for batch in todo:
            with torch.no_grad():
                x = self._generate(batch)
                keep = np.ones(len(batch), dtype=bool)
                if self.classifier is not None:
                    proba = self.classifier.predict_proba(torch.from_numpy(x))
                    proba = proba.detach().float().cpu().numpy() if hasattr(proba, "detach") else np.asarray(proba)
                    keep = _confidence(proba, batch, self.multi_label) >= float(self.min_confidence)
                copies = {}
                if self.near_copy is not None:  # near-copies of real training images are never written
                    for i, (j, c) in enumerate(zip(batch, self.near_copy.check(x), strict=True)):
                        if c["flagged"]:
                            keep[i] = False
                            copies[j.id] = {k: c[k] for k in ("nearest_real_id", "ratio", "exact_copy")}
            for j, xi, ok in zip(batch, x, keep, strict=True):
                path = self.out_dir / self.layout.relpath(j)
                if ok and not path.is_file():
                    self.layout.write(path, xi, j)
                    self.written += 1
            if self.filtering:
                rec = {"rejected": [j.id for j, ok in zip(batch, keep, strict=True) if not ok], "near_copies": copies}
                atomic_write_text(self._record_path(batch), json.dumps(rec) + "\n")
            self.generated += 1
            for _ in batch:
                yield None

    def run(self, jobs: Sequence[Job], desc: str) -> None:
        from medlt.cliutils import progress

        mine = rank_batches(batches(jobs, self.settings["batch_size"]), self.rank, self.world)
        todo = [b for b in mine if not self.batch_done(b)]
        self.skipped += len(mine) - len(todo)
        total = sum(len(b) for b in todo)
        for _ in progress(self._images(todo), total=total, desc=desc, unit="img",
                          disable=not self.show_progress):
            pass


def run_synth(recipe, out_dir: str | Path, *, generator=None, checkpoint: str | Path | None = None,
              table=None, quota: str | None = None, guidance_scale: float | None = None,
              sampler: str | None = None, steps: int | None = None, batch_size: int | None = None,
              dry_run: bool = False, classifier=None, classifier_sha256: str | None = None,
              min_confidence: float | None = None, rank: int = 0, world_size: int = 1,
              device: str = "cpu", show_progress: bool = True,
              guidance_from: str | Path | None = None, near_copies: str | Path | None = None,
              plan_seed: int | None = None, warn=None) -> SynthResult:
    """Plan and (unless dry_run) generate a class-balanced synthetic training set into `out_dir`.

    `generator` (an object with `.generate`, `.label_space`, `.checkpoint_sha256`, `.image_shape`)
    or `checkpoint` (loaded with medlt.diffusion.sample.load_generator). `table` defaults to
    `medlt.data.table.load_table(recipe)`. Under torchrun pass rank/world_size; every rank calls
    this, rank 0 writes plan.json and the manifests. `guidance_from`: a `medlt tune-guidance`
    guidance.json; each row then gets its group's scale (medlt.synth.guidance). `near_copies`: a
    feature extractor; images flagged as near-copies of real training images are dropped and
    re-drawn (medlt.synth.near_copies). `plan_seed`: the multi-label plan's seed (make_plan).
    `warn`: called with each warning for the user as soon as it is known, before any image is
    generated (they are also in the result's `warnings`).
    """
    from medlt.utils.distributed import barrier

    t0 = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    if quota is not None:  # a --quota value: checked here, so that '' does not fall back to the recipe's
        parse_quota(quota, where="--quota", error=UsageError)
    if table is None:
        from medlt.data.table import load_table

        table = load_table(recipe)
    checked_sha = None  # --dry-run with a checkpoint: its sha256, for the guidance file's check
    if not dry_run:
        generator, recipe = _generator_and_recipe(recipe, table, generator, checkpoint, device)
    elif checkpoint is not None:  # the dry run checks what the real run checks of the checkpoint
        recipe, checked_sha = checkpoint_recipe(recipe, table, checkpoint)
    plan = make_plan(recipe, table, quota, plan_seed)
    check_plan_not_empty(plan, quota_from_cli=quota is not None)
    settings: dict[str, Any] = {"quota": str(plan.quota), **sampling_settings(
        recipe, guidance_scale=guidance_scale, sampler=sampler, steps=steps, batch_size=batch_size)}
    warnings: list[str] = []
    if guidance_from is not None:
        if guidance_scale is not None:
            raise UsageError("--guidance and --guidance-from exclude each other")
        warnings += apply_guidance_file(settings, guidance_from, plan, recipe.data.group_thresholds)
    for line in warnings if warn is not None else ():
        warn(line)
    settings["filter"] = None
    if classifier is not None or min_confidence is not None:
        if classifier is None or min_confidence is None:
            raise UsageError("the quality filter needs both --filter-classifier and --min-confidence")
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise UsageError(f"--min-confidence must be in [0, 1], got {min_confidence}")
        settings["filter"] = {"classifier_sha256": classifier_sha256, "min_confidence": float(min_confidence)}
    fmt = recipe.data.format
    ct_spacing = None
    if fmt == "ct-rate":
        if recipe.data.ct.mode != "3d":
            raise MedltError("medlt synth writes CT-RATE volumes: data.ct.mode must be '3d'")
        ct_spacing = ct_output_spacing(recipe.data)
    settings["output_format"] = resolve_layout(fmt, recipe.synth.output_format, spacing_mm=ct_spacing).ext
    result = SynthResult(out_dir, plan, settings, warnings=warnings)

    if dry_run:
        if checked_sha is not None:
            check_tuned_for(settings, checked_sha)
        settings["checkpoint_sha256"] = None  # a dry-run plan: never taken for a real run's (resume guard)
        # never replace the plan.json of a real run (it guards that folder's resume settings)
        if rank == 0 and not _real_run_plan(out_dir / "plan.json"):
            write_plan(out_dir / "plan.json", plan, settings)
            result.outputs["plan"] = out_dir / "plan.json"
        result.seconds = time.perf_counter() - t0
        return result

    gen_names = tuple(generator.label_space.names)
    clf_space = getattr(classifier, "label_space", None)
    if clf_space is not None and tuple(clf_space.names) != gen_names:
        raise CheckpointError(f"filter classifier classes {list(clf_space.names)} differ from the "
                              f"generator's {list(gen_names)}")
    settings["checkpoint_sha256"] = str(generator.checkpoint_sha256)
    settings["decode"] = getattr(generator, "decode_settings", None)  # latent: this run's autoencoder.decode*
    check_tuned_for(settings, settings["checkpoint_sha256"])
    image_shape = tuple(int(s) for s in getattr(generator, "image_shape", ()) or ())
    # DICOM output: the real training images' field of view over the output grid (or no spacing)
    spacing_2d = cxr_output_spacing(table.frame.loc[table.frame["split"] == recipe.data.splits.train, "image"],
                                    image_shape[-2:] if len(image_shape) == 3 else recipe.data.image_size) \
        if settings["output_format"] == "dcm" else None
    layout = resolve_layout(fmt, recipe.synth.output_format, spacing_mm=ct_spacing,
                            checkpoint_sha256=settings["checkpoint_sha256"], pixel_spacing=spacing_2d)

    near = None
    if near_copies is not None:  # the extractor now (cheap), the real reference features on first use
        from medlt.synth.near_copies import load_near_copy_filter

        near = load_near_copy_filter(recipe, near_copies, device=device, show_progress=show_progress and rank == 0,
                                     image_dims=len(image_shape) - 1 if image_shape else None)
        settings["near_copies"] = near.settings
    check_resume(out_dir / "plan.json", plan, settings)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        _clean_stale_tmp(out_dir)
        write_plan(out_dir / "plan.json", plan, settings)
    barrier()

    runner = _Runner(out_dir, generator, layout, settings, plan.label_space.multi_label, rank, world_size,
                     show_progress and rank == 0, classifier, min_confidence, near)
    final_jobs, dropped = _run_all(runner, plan, recipe, out_dir)
    result.written, result.skipped_batches, result.generated_batches = (
        runner.written, runner.skipped, runner.generated)
    result.final_jobs, result.dropped = final_jobs, dropped
    barrier()

    if rank == 0:
        missing = [j.id for j in final_jobs if not (out_dir / layout.relpath(j)).is_file()]
        if missing:
            raise DataError(f"{out_dir}: {len(missing)} planned image(s) missing after generation "
                            f"(e.g. {missing[:3]}); re-run the same command to finish")
        write_plan(out_dir / "plan.json", plan, settings)
        outputs = write_manifests(out_dir, final_jobs, layout, plan.label_space, recipe.data.splits.train,
                                  settings, table.frame, image_shape=image_shape or None,
                                  data_root=recipe.data.root)
        if "merged_root" in outputs:
            root = Path(outputs["merged_root"].read_text().strip())
            outputs["merged_recipe"] = write_merged_recipe(out_dir, recipe, root, plan.label_space.names)
        if runner.filtering:
            outputs["dropped"] = write_dropped(out_dir, dropped)
        result.outputs = outputs
    barrier()
    result.seconds = time.perf_counter() - t0
    return result


def check_plan_not_empty(plan: SynthPlan, *, quota_from_cli: bool) -> None:
    """A plan of no image is refused before anything is written (an empty synthetic set would pass as a
    finished run and only fail later, in evaluate or classify): UsageError naming --quota, or
    RecipeError naming synth.quota, with the class counts that the quota already reaches."""
    if plan.num_images:
        return
    where, error = ("--quota", UsageError) if quota_from_cli else ("recipe key 'synth.quota'", RecipeError)
    real = [c.real for c in plan.classes]
    raise error(f"{where} {plan.quota} plans no synthetic image: every class already reaches its target on the "
                f"training split (real images per class {min(real)} to {max(real)}); nothing was written; "
                f"choose a larger quota (to_count:N with N above {max(real)}, the largest class)")


def checkpoint_recipe(recipe, table, checkpoint):
    """What the real run checks of `checkpoint` before generating, done from its stored recipe, label
    space and autoencoder config only (no model is built; `medlt synth --dry-run --checkpoint`):
    the file (CheckpointError), its classes against the recipe's data, the recipe's model-defining
    keys against its own (RecipeError). Returns (the recipe with the checkpoint's model keys, the
    checkpoint's sha256), so the sampler and guidance-file checks then see what the real run sees."""
    from medlt.data.labels import LabelSpace
    from medlt.diffusion.model_keys import recipe_with_model_of
    from medlt.diffusion.sample import REQUIRED_KEYS, resolve_checkpoint
    from medlt.recipe import recipe_from_resolved
    from medlt.recipe.autoencoder import AutoencoderConfig
    from medlt.utils.checkpoint import file_sha256, load_checkpoint

    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a medlt diffusion checkpoint (missing {missing})")
    _check_classes(LabelSpace.from_dict(state["label_space"]), table, checkpoint)
    entry = state.get("latent")
    latent = AutoencoderConfig.model_validate(entry["config"]).model_dump(mode="json") if entry else None
    recipe = recipe_with_model_of(recipe, recipe_from_resolved(state["recipe"]), where=str(checkpoint),
                                  latent_config=latent)
    return recipe, file_sha256(path)


def _check_classes(space, table, checkpoint) -> None:
    """CheckpointError when the checkpoint's classes (or label mode) are not the recipe data's."""
    if tuple(space.names) != tuple(table.label_space.names) or bool(space.multi_label) != bool(
            table.label_space.multi_label):
        raise CheckpointError(
            f"checkpoint {checkpoint or ''} was trained on classes {list(space.names)} "
            f"(multi_label={space.multi_label}); the recipe's data has "
            f"{list(table.label_space.names)} (multi_label={table.label_space.multi_label})")


def _generator_and_recipe(recipe, table, generator, checkpoint, device: str):
    """Load the checkpoint (unless a generator is given), check its classes against the recipe's,
    and take its model-defining keys (medlt.diffusion.model_keys; a test double without a recipe
    keeps the recipe as it is)."""
    if generator is None:
        if checkpoint is None:
            raise UsageError("--checkpoint is needed to generate (only --dry-run works without it)")
        from medlt.diffusion.sample import load_generator

        generator = load_generator(checkpoint, device=device)
    _check_classes(generator.label_space, table, checkpoint)
    if getattr(generator, "recipe", None) is not None:
        from medlt.diffusion.sample import recipe_for_generator

        recipe = recipe_for_generator(recipe, generator, checkpoint or "(the given generator)")
    return generator, recipe


def _run_all(runner: _Runner, plan: SynthPlan, recipe, out_dir: Path) -> tuple[list[Job], list[dict]]:
    """Generate the plan's jobs; with a filter, further rounds replace rejected images. Returns the
    accepted jobs (in job order) and one record per dropped image (DIR/dropped.csv)."""
    from medlt.utils.distributed import barrier

    jobs = list(plan.jobs)
    runner.run(jobs, "synth")
    if not runner.filtering:
        return jobs, []
    all_jobs, accepted, dropped = list(jobs), [], []
    rejections: Counter[str] = Counter()
    near_counts: Counter[str] = Counter()
    names = plan.label_space.names
    current = jobs
    for round_ in range(1, int(recipe.synth.filter_max_rounds) + 1):
        barrier()
        rejected_ids: set[str] = set()
        copies: dict[str, dict] = {}
        for b in batches(current, runner.settings["batch_size"]):
            rejected_ids.update(runner.rejected_in(b))
            copies.update(runner.near_copies_in(b))
        rejected = [j for j in current if j.id in rejected_ids]
        accepted += [j for j in current if j.id not in rejected_ids]
        rejections.update(names[j.driver] for j in rejected)
        near_counts.update(names[j.driver] for j in rejected if j.id in copies)
        plan.rejections, plan.near_copies = dict(rejections), dict(near_counts)
        if rejected and round_ < int(recipe.synth.filter_max_rounds):
            current = replacement_jobs(rejected, all_jobs, plan.recipe_seed, plan.label_space.multi_label)
        else:
            current = []
        by = {j.replaces: j.id for j in current}
        dropped += [_dropped_record(j, round_, names, copies.get(j.id), by.get(j.id)) for j in rejected]
        if not rejected:
            return sorted(accepted, key=lambda j: j.ordinal), dropped
        if not current:
            if runner.rank == 0:
                write_plan(out_dir / "plan.json", plan, runner.settings)
                write_dropped(out_dir, dropped)  # why each image was left out, also when the run stops here
            raise MedltError(_filter_gave_up(runner, round_, rejected, copies, len(accepted), names, out_dir))
        all_jobs += current
        runner.run(current, f"synth (filter round {round_})")
    raise AssertionError("unreachable")


def _filter_gave_up(runner: _Runner, rounds: int, rejected: Sequence[Job], copies: dict, n_accepted: int,
                    names, out_dir: Path) -> str:
    """The one-line error when the filters still reject images after synth.filter_max_rounds: what is
    short, why (by the filters this run used), what to change, and what stays on disk."""
    short = dict(Counter(names[j.driver] for j in rejected))
    n_copies = sum(j.id in copies for j in rejected)
    why, advice = [], ["raise synth.filter_max_rounds"]
    if runner.classifier is not None:
        why.append(f"{len(rejected) - n_copies} below --min-confidence {runner.min_confidence:g}")
        advice.append("lower --min-confidence or check the --filter-classifier")
    if runner.near_copy is not None:
        why.append(f"{n_copies} near-copies of real training images")
        advice.append("a class whose images keep being near-copies is one the model has memorised, which more "
                      "rounds rarely fix")
    kept = (f"the {n_accepted} accepted image(s) stay in {out_dir} (re-run to resume)" if n_accepted
            else "no image was accepted")
    return (f"synthesis filter: after {rounds} round{'s' * (rounds != 1)} {len(rejected)} image(s) still rejected ({'; '.join(why)}; "
            f"short: {short}); {'; '.join(advice)}; {kept}; {out_dir / 'dropped.csv'} lists every dropped image")


def _dropped_record(job: Job, round_: int, names, copy: dict | None, replaced_by: str | None) -> dict:
    """One row of DIR/dropped.csv: which image was left out, why, and what re-draws it."""
    return {"id": job.id, "seed": str(job.seed), "class": names[job.driver],
            "classes": "|".join(n for n, v in zip(names, job.label, strict=True) if v),
            "round": round_, "attempt": job.attempt, "reason": "near-copy" if copy else "low-confidence",
            "nearest_real_id": copy["nearest_real_id"] if copy else None,
            "ratio": copy["ratio"] if copy else None, "exact_copy": int(bool(copy and copy["exact_copy"])),
            "replaced_by": replaced_by}
