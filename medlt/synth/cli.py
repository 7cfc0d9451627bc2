"""`medlt synth`: a class-balanced synthetic training set in the dataset's own format."""

from __future__ import annotations

from pathlib import Path

import typer

from medlt.cliutils import RECIPE_ARG, SET_OPT

HELP = """Generate a class-balanced synthetic training set from a trained diffusion checkpoint.

Plans per-class quotas from the training split's counts (--quota to_head | to_count:N |
to_ratio:R), samples from the EMA weights with classifier-free guidance, and writes images in the
dataset's own format (NIH PNG, MIMIC DICOM or JPG, CT-RATE NIfTI) under OUT, plus OUT/plan.json,
OUT/manifest.csv (synthetic rows), OUT/merged.csv (real rows + synthetic training rows) and
OUT/merged.recipe.yaml (a recipe that reads merged.csv: use it for `medlt data validate` and
classifier training).

Each image's noise seed is a pure function of (recipe seed, class, index): re-running the same
command skips finished files and completes an interrupted run with identical bytes; under
`torchrun --nproc_per_node N -m medlt synth ...` every rank generates its share.
--dry-run prints the plan (class, group, real, to generate) and writes OUT/plan.json only; with
--checkpoint it also runs the real run's checks of the checkpoint (its classes, the recipe's
model-defining keys, the sampler, a --guidance-from file's checkpoint) without building the model.

Near-copies: in medical data a synthetic image that reproduces a training image is a privacy leak
(a real patient's anatomy in a set shared as synthetic). --drop-near-copies EXTRACTOR leaves out
every image that `medlt evaluate` would flag as one (its distance to the nearest real training image
over that image's distance to its own nearest real neighbour, in EXTRACTOR's feature space, at most
evaluate.memorization_ratio_threshold, or an exact copy) and re-draws it with a fresh seed (still a
pure function of the run, so resume and torchrun shards give the same bytes) until every quota is met
or synth.filter_max_rounds is used up. manifest.csv records each row's redraw_attempt and the id it
replaces; OUT/dropped.csv lists every dropped image, its nearest real image and ratio.

Best of K (off by default: K = 1): --candidates-per-image K draws K candidates per planned image
(candidate 0 is the image K = 1 writes; the others' seeds are pure functions of the image's seed and
the candidate index) and keeps the one --selector scores best: a `medlt classify` run trained on the
real long-tailed training split only. --selection-rule best keeps the highest score (single-label:
p(intended class); multi-label: the geometric mean over classes of the probability of the intended
label vector); best-not-near-copy keeps the highest-scored candidate that is not a near-copy of a real
training image (needs --drop-near-copies). Generation costs about K times as much; manifest.csv
records K and the kept candidate's index, seed, rank and score. The selector is no judge: a fidelity
measured by a classifier trained on the same real images is biased upwards.
"""


def synth(
    recipe: Path = RECIPE_ARG,
    checkpoint: Path = typer.Option(None, "--checkpoint", "-c",
                                    help="Diffusion checkpoint (RUN/checkpoints/last.pt). Optional with --dry-run, "
                                    "which then checks it as the real run would."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created; re-use it to resume)."),
    quota: str = typer.Option(None, "--quota", help="to_head | to_count:N | to_ratio:R (default: recipe synth.quota)."),
    guidance: float = typer.Option(None, "--guidance", help="Classifier-free guidance scale w (default: recipe sampling.guidance_scale)."),
    guidance_from: Path = typer.Option(None, "--guidance-from", help="A `medlt tune-guidance` OUT/guidance.json: each "
                                       "image gets its class group's scale (multi-label: the rarest group among its "
                                       "labels); manifest.csv records each row's scale."),
    sampler: str = typer.Option(None, "--sampler", help="ddim | ddpm | dpm++ (ε-prediction) or rflow (rectified flow) "
                                "(default: recipe sampling.sampler)."),
    steps: int = typer.Option(None, "--steps", help="Sampling steps (default: recipe sampling.num_inference_steps)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Images per generator call (default: recipe synth.batch_size; keep it when resuming)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, write OUT/plan.json, generate nothing."),
    filter_classifier: Path = typer.Option(None, "--filter-classifier", help="Classifier run/checkpoint for the quality filter."),
    min_confidence: float = typer.Option(None, "--min-confidence", help="Quality filter: keep images whose intended class has probability >= P."),
    drop_near_copies: Path = typer.Option(None, "--drop-near-copies", help="Feature extractor (a `medlt classify` "
                                          "/ `medlt oracle` run, TorchScript file or state dict, as evaluate's "
                                          "--feature-extractor): leave out images flagged as near-copies of real "
                                          "training images (a privacy leak) and re-draw them with fresh seeds; "
                                          "threshold evaluate.memorization_ratio_threshold."),
    candidates_per_image: int = typer.Option(None, "--candidates-per-image", help="Best of K: candidates drawn "
                                             "per planned image (default: recipe synth.candidates_per_image, 1 = "
                                             "no selection); K > 1 needs --selector."),
    selector: Path = typer.Option(None, "--selector", help="Best of K: the `medlt classify` run (or .pt) that "
                                  "scores the candidates, trained on the real training split only (default: "
                                  "recipe synth.selector)."),
    selection_rule: str = typer.Option(None, "--selection-rule", help="Best of K: best | best-not-near-copy "
                                       "(default: recipe synth.selection_rule)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    sets: list[str] = SET_OPT,
) -> None:
    from rich.console import Console

    from medlt.cliutils import load_recipe_cli
    from medlt.errors import MedltError, UsageError
    from medlt.synth.generate import run_synth
    from medlt.synth.plan import plan_table
    from medlt.synth.select import cost_lines
    from medlt.utils.checkpoint import file_sha256
    from medlt.utils.device import resolve_device
    from medlt.utils.distributed import cleanup, init_distributed

    console = Console(stderr=False)
    rec = load_recipe_cli(recipe, sets)
    resolve_device(device, "--device")  # CUDA asked for but absent: one line, before any work
    if not dry_run and checkpoint is None:
        raise UsageError("--checkpoint is required (only --dry-run works without it)")
    if (filter_classifier is None) != (min_confidence is None):
        raise UsageError("the quality filter needs both --filter-classifier and --min-confidence")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:  # before the classifier is loaded
        raise UsageError(f"--min-confidence must be in [0, 1], got {min_confidence}")
    if drop_near_copies is not None and not drop_near_copies.exists():
        raise MedltError(f"--drop-near-copies {drop_near_copies}: no such file or folder (give a feature "
                         f"extractor: a `medlt classify` or `medlt oracle` run, a TorchScript file or a state dict)")
    if selector is not None and not selector.exists():
        raise MedltError(f"--selector {selector}: no such file or folder (give a `medlt classify` run trained on "
                         f"the real training split)")
    select = {"candidates_per_image": candidates_per_image, "selector": selector, "selection_rule": selection_rule}
    if dry_run:
        res = run_synth(rec, out, checkpoint=checkpoint, quota=quota, guidance_scale=guidance, sampler=sampler,
                        steps=steps, batch_size=batch_size, dry_run=True, show_progress=False,
                        guidance_from=guidance_from, near_copies=drop_near_copies, warn=_warn, **select)
        console.print(plan_table(res.plan))
        console.print(f"rule: {res.plan.rule}")
        for line in cost_lines(res.selection):
            console.print(line)
        console.print(f"checkpoint {checkpoint}: checked (classes, model-defining keys, sampler)" if checkpoint
                      else "no --checkpoint given: its checks run only with --checkpoint")
        if "plan" in res.outputs:
            console.print(f"plan written to {res.outputs['plan']}")
        else:
            console.print(f"{res.out_dir / 'plan.json'} belongs to a real run there and was left as is")
        return
    dist = init_distributed(device)
    try:
        clf, clf_sha = None, None
        if filter_classifier is not None:
            from medlt.classify import load_classifier
            from medlt.classify.load import checkpoint_of

            clf = load_classifier(filter_classifier, device=str(dist.device))
            clf_sha = file_sha256(checkpoint_of(filter_classifier))
        res = run_synth(rec, out, checkpoint=checkpoint, quota=quota, guidance_scale=guidance,
                        sampler=sampler, steps=steps, batch_size=batch_size, classifier=clf,
                        classifier_sha256=clf_sha, min_confidence=min_confidence, rank=dist.rank,
                        world_size=dist.world_size, device=str(dist.device), guidance_from=guidance_from,
                        near_copies=drop_near_copies, warn=_warn if dist.is_main else None, **select)
        if dist.is_main:
            console.print(plan_table(res.plan, title=f"synthesised: quota {res.plan.quota}, "
                                                     f"{len(res.final_jobs)} images"))
            if isinstance(res.settings.get("guidance_scale"), dict):
                console.print("guidance per group (--guidance-from): " + ", ".join(
                    f"{g} {w:g}" for g, w in res.settings["guidance_scale"].items()))
            console.print(f"{res.written} file(s) written by rank 0, {res.skipped_batches} finished "
                          f"batch(es) skipped, {res.seconds:.1f} s")
            if res.selection.active:
                console.print(f"best of {res.selection.k} ({res.selection.rule}): {res.candidates} candidate(s) "
                              f"generated by rank 0")
            n_copies = sum(d["reason"] == "near-copy" for d in res.dropped)
            if drop_near_copies is not None:
                console.print(f"near-copies of real training images dropped and re-drawn: {n_copies}")
            for name, p in res.outputs.items():
                console.print(f"{name}: {p}")
    finally:
        cleanup()


def _warn(line: str) -> None:
    typer.echo(f"warning: {line}", err=True)


def register(app: typer.Typer) -> None:
    """Add `medlt synth`."""
    app.command("synth", help=HELP)(synth)
