"""`medlt train` and `medlt sample` (heavy imports stay inside the command bodies)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medlt.cliutils import RECIPE_ARG, SET_OPT, comma_list, load_recipe_cli


def train_cmd(
    recipe: Path = RECIPE_ARG,
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: recipe.resolved.yaml, metrics.csv, "
                             "checkpoints/last.pt, samples/step_*.png."),
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN/checkpoints/last.pt "
                                "(same losses and data order as an uninterrupted run). Only cadence keys "
                                "(training.max_steps, the *_every_steps, sample grid size, device, "
                                "data.num_workers, ...) may differ from the checkpoint's recipe; each resume "
                                "is recorded in RUN/resume_history.yaml."),
    sets: list[str] = SET_OPT,
) -> None:
    """Train the class-conditional diffusion model with the recipe's long-tail regularizers.

    Multi-GPU / multi-process: `torchrun --nproc_per_node=N -m medlt train RECIPE --out RUN`
    (DDP; NCCL on GPUs, gloo on CPUs; rank 0 writes). A NaN/inf loss stops the run with one line and
    leaves the last good checkpoint intact.
    """
    import os

    from medlt.diffusion.train import train
    from medlt.utils.device import check_recipe_devices
    from medlt.utils.distributed import cleanup

    r = load_recipe_cli(recipe, sets, uses=("diffusion",))
    check_recipe_devices(r, ("training.device",))
    try:
        ckpt = train(r, out, resume=resume)
    finally:
        cleanup()
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"checkpoint: {ckpt}")


def sample_cmd(
    recipe: Path = RECIPE_ARG,
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="RUN/checkpoints/last.pt or a RUN folder."),
    class_name: str = typer.Option(None, "--class", help="Class to generate (single-label), e.g. 'Pneumothorax'."),
    labels: str = typer.Option(None, "--labels", help='Multi-label: comma-separated findings, e.g. "A,B" '
                               '(an empty string = no finding).'),
    num: int = typer.Option(8, "--num", "-n", min=1, help="Number of images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (PNGs, NIfTI for 3D, contact_sheet.png)."),
    guidance: float = typer.Option(None, "--guidance", "-w", help="Guidance scale ω (default: recipe sampling.guidance_scale)."),
    steps: int = typer.Option(None, "--steps", help="Sampling steps (default: recipe sampling.num_inference_steps)."),
    sampler: str = typer.Option(None, "--sampler", help="ddim | ddpm | dpm++ (ε-prediction models) or rflow "
                                "(rectified-flow models) (default: recipe sampling.sampler)."),
    seed: int = typer.Option(None, "--seed", help="Image i uses seed derive_seed(seed, label, i) "
                             "(default: the recipe's seed)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    sets: list[str] = SET_OPT,
) -> None:
    """Generate a few synthetic images of one class (EMA weights) for a quick look: one PNG per image
    (3D: NIfTI volumes in HU plus middle-slice PNGs) and a contact sheet. Every file is marked
    synthetic. For class-balanced dataset synthesis use `medlt synth`."""
    import torch

    from medlt.diffusion.images import contact_sheet, save_png, to_display
    from medlt.diffusion.sample import load_generator, recipe_for_generator
    from medlt.errors import MedltError, UsageError
    from medlt.utils.device import resolve_device
    from medlt.utils.seeding import derive_seed

    r = load_recipe_cli(recipe, sets)
    dev = resolve_device(device, "--device")
    gen = load_generator(checkpoint, device=dev)
    ls = gen.label_space
    _check_classes(r, ls, checkpoint)
    r = recipe_for_generator(r, gen, checkpoint)  # the checkpoint defines its model (and sampler default)
    seed = r.seed if seed is None else seed
    if ls.multi_label:
        if labels is None:
            raise MedltError("this model is multi-label: pass --labels \"A,B\" (not --class)")
        names = [s for s in (p.strip() for p in labels.split(",")) if s]
        vec = torch.as_tensor(ls.encode(names), dtype=torch.float32)
        y = vec[None].repeat(num, 1)
        tag = "+".join(ls.names[i] for i in range(ls.num_classes) if vec[i] > 0) or "no-finding"
    else:
        if class_name is None:
            raise MedltError("pass --class NAME (one of: " + ", ".join(ls.names) + ")")
        idx = ls.index(class_name)
        y = torch.full((num,), idx, dtype=torch.int64)
        tag = ls.names[idx]
    w = r.sampling.guidance_scale if guidance is None else guidance
    s = r.sampling.num_inference_steps if steps is None else steps
    smp = sampler or r.sampling.sampler
    t_max = gen.recipe.diffusion.num_train_timesteps
    if not 1 <= s <= t_max:
        raise UsageError(f"--steps must be between 1 and the model's num_train_timesteps={t_max} (got {s})")
    if not w >= 0:
        raise UsageError(f"--guidance must be >= 0 (got {w})")
    seeds = [derive_seed(seed, tag, i) for i in range(num)]
    x = gen.generate(y, seeds, guidance_scale=w, num_inference_steps=s, sampler=smp)
    out.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_+" else "_" for ch in tag)
    from PIL import Image

    for i, img in enumerate(x):
        stem = out / f"synthetic_{safe}_{i:04d}"
        meta = {"label": tag, "seed": seeds[i], "guidance_scale": w, "checkpoint_sha256": gen.checkpoint_sha256}
        if getattr(gen, "decode_settings", None):  # latent: the run-time decoding used
            meta["decode"] = json.dumps(gen.decode_settings)
        if getattr(gen, "sampling_settings", None):  # sampling.x0_clip, guidance rescale / interval
            meta["sampling"] = json.dumps(gen.sampling_settings)
        save_png(stem.with_suffix(".png"), Image.fromarray(to_display(img)), **meta)
        if img.dim() == 4:
            from medlt.data.io import write_nifti

            spacing = r.data.ct.spacing_mm
            write_nifti(f"{stem}.nii.gz", (img[0].numpy() * r.data.ct.hu_scale).astype("int16"), spacing,
                        descrip=f"SYNTHETIC medlt {tag} seed={seeds[i]}"[:80])
    save_png(out / "contact_sheet.png", contact_sheet(x), label=tag, guidance_scale=w)
    typer.echo(f"{num} synthetic image(s) of '{tag}' in {out} (contact_sheet.png)")


def _check_classes(recipe, label_space, checkpoint: Path) -> None:
    """CheckpointError unless the recipe's classes are the checkpoint's (as `medlt synth` requires)."""
    from medlt.data.sources import label_space_for
    from medlt.errors import CheckpointError

    mine = label_space_for(recipe.data)
    if tuple(mine.names) != tuple(label_space.names) or bool(mine.multi_label) != bool(label_space.multi_label):
        raise CheckpointError(f"checkpoint {checkpoint} was trained on classes {list(label_space.names)} "
                              f"(multi_label={label_space.multi_label}); the recipe's data has "
                              f"{list(mine.names)} (multi_label={mine.multi_label}); use the recipe it was "
                              f"trained with")


def tune_guidance_cmd(
    recipe: Path = RECIPE_ARG,
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Diffusion run folder or RUN/checkpoints/last.pt."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: guidance.json and guidance.png."),
    reference_classifier: Path = typer.Option(..., "--reference-classifier", help="The fixed judge and feature "
                                              "extractor: a `medlt classify` or `medlt oracle` run/.pt trained on "
                                              "real (or phantom) images with the recipe's classes."),
    scales: str = typer.Option(",".join(f"{s:g}" for s in (0.0, 0.5, 1.0, 1.6, 2.5, 4.0)), "--scales",
                               help="Comma-separated guidance scales to try."),
    steps: int = typer.Option(None, "--steps", min=1, help="Sampling steps (default: recipe sampling.num_inference_steps)."),
    sampler: str = typer.Option(None, "--sampler", help="Sampler (default: recipe sampling.sampler)."),
    per_class: int = typer.Option(16, "--per-class", min=2, help="Synthetic images per class and scale "
                                  "(the same seeds at every scale)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    sets: list[str] = SET_OPT,
) -> None:
    """Pick one classifier-free guidance scale per class group (head / medium / tail).

    For each scale, samples --per-class images of every class and scores them on the real
    balanced-val split with class-matched FID/KID and class fidelity (features and judgements of the
    --reference-classifier). Per group it takes, among the scales whose FID lies within the 95%
    interval of the group's best FID, the one with the highest class fidelity. Writes
    OUT/guidance.json (use it with `medlt synth --guidance-from OUT/guidance.json`) and
    OUT/guidance.png (FID and fidelity vs scale, one line per group).
    """
    from medlt.diffusion.tune_guidance import check_scales, tune_guidance
    from medlt.utils.device import resolve_device

    values = check_scales(comma_list(scales, "--scales", float, kind="numbers"))  # before any file is read
    r = load_recipe_cli(recipe, sets)
    dev = str(resolve_device(device, "--device"))
    _check_out_folder(out)
    res = tune_guidance(r, checkpoint, reference_classifier, out, scales=values, steps=steps, sampler=sampler,
                        per_class=per_class, device=dev, log=lambda s: typer.echo(s, err=True))
    for g, c in res["choice"].items():
        typer.echo(f"{g}: guidance scale {c['scale']:g} ({c['reason']})")
    typer.echo(f"written: {out / 'guidance.json'}, {out / 'guidance.png'}")


def label_sensitivity_cmd(
    recipe: Path = RECIPE_ARG,
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", "-c",
                                          help="RUN/checkpoints/last.pt or a RUN folder; repeat it to compare "
                                               "checkpoints (e.g. two conditioning designs) side by side."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: label_sensitivity.json and .md (with "
                             "several checkpoints: one subfolder each and comparison.md/.json). A previous "
                             "run's reports there are replaced."),
    per_class: int = typer.Option(4, "--per-class", min=1, help="Images per class and condition."),
    timesteps: str = typer.Option(None, "--timesteps",
                                  help="Comma-separated distinct timesteps t in [0, num_train_timesteps) at which "
                                       "the network's prediction is compared (default: 10%, 50% and 90% of the "
                                       "model's num_train_timesteps)."),
    guidance: float = typer.Option(None, "--guidance", "-w",
                                   help="Guidance scale ω of the samples (default: recipe sampling.guidance_scale)."),
    steps: int = typer.Option(None, "--steps", help="Sampling steps (default: recipe sampling.num_inference_steps)."),
    seed: int = typer.Option(None, "--seed", help="Seed of every draw (default: the recipe's seed)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    sets: list[str] = SET_OPT,
) -> None:
    """Does the label steer the generator? Per class, how far asking for that class moves the samples
    and the network's prediction, relative to changing the noise (0 = the label is ignored, 1 = as much
    as a new seed). Single-label: the class vs the most frequent class (for that class itself, the next
    most frequent); multi-label: the class alone vs no finding ("No Finding" alone where it is a class,
    else no label). Needs no data and no judge, so run it on any checkpoint before synthesising from it.
    Writes label_sensitivity.json and label_sensitivity.md and prints the table; with several
    --checkpoint (all with one num_train_timesteps), the same seeds and conditions for each and a
    side-by-side comparison.md."""
    import json

    from medlt.cliutils import comma_list
    from medlt.diffusion.label_sensitivity import compare_markdown, label_sensitivity, render_markdown
    from medlt.diffusion.model_keys import differing_model_keys
    from medlt.diffusion.sample import load_generator, recipe_for_generator
    from medlt.errors import UsageError
    from medlt.utils.atomic import atomic_write_text
    from medlt.utils.device import resolve_device
    from medlt.utils.progress import Progress

    ts = None if timesteps is None else comma_list(timesteps, "--timesteps", int, kind="integers")
    r0 = load_recipe_cli(recipe, sets)
    dev = resolve_device(device, "--device")
    _check_out_folder(out, holds="label_sensitivity.json and .md")
    names = _checkpoint_names(checkpoint)
    gens = [load_generator(c, device=dev) for c in checkpoint]
    _check_same_timesteps(checkpoint, [g.recipe.diffusion.num_train_timesteps for g in gens])
    # keys on which the compared checkpoints differ (e.g. the conditioning design) come from each one
    compared = differing_model_keys([g.recipe for g in gens]) if len(gens) > 1 else frozenset()
    reports = {}
    for name, ckpt, gen in zip(names, checkpoint, gens, strict=True):
        _check_classes(r0, gen.label_space, ckpt)
        r = recipe_for_generator(r0, gen, ckpt, compared)
        t_max = gen.recipe.diffusion.num_train_timesteps
        t_list = ts if ts is not None else [int(t_max * f) for f in (0.1, 0.5, 0.9)]
        if any(not 0 <= t < t_max for t in t_list):
            raise UsageError(f"--timesteps must lie in [0, {t_max}) (the model's num_train_timesteps of "
                             f"{ckpt}), got {t_list}")
        s = r.sampling.num_inference_steps if steps is None else steps
        if not 1 <= s <= t_max:
            raise UsageError(f"--steps must be between 1 and the model's num_train_timesteps={t_max} (got {s})")
        w = r.sampling.guidance_scale if guidance is None else guidance
        if not w >= 0:
            raise UsageError(f"--guidance must be >= 0 (got {w})")
        desc = "label sensitivity" + (f" ({name})" if len(checkpoint) > 1 else "")
        bar = Progress(gen.label_space.num_classes, desc=desc, unit="class")
        try:
            rep = label_sensitivity(gen, per_class=per_class, timesteps=t_list,
                                    seed=r.seed if seed is None else seed, guidance_scale=w,
                                    num_inference_steps=s, sampler=r.sampling.sampler,
                                    group_thresholds=tuple(r.data.group_thresholds),
                                    progress=lambda k, bar=bar: bar.update(1))
        finally:
            bar.close()
        rep.update({"checkpoint": str(ckpt), "checkpoint_sha256": gen.checkpoint_sha256, "step": gen.step,
                    "num_train_timesteps": t_max, "guidance_scale": w, "num_inference_steps": s,
                    "sampler": r.sampling.sampler, "per_class_images": per_class})
        reports[name] = rep
    _remove_previous_reports(out)  # a reused --out holds this run's reports only
    if len(checkpoint) == 1:
        rep = reports[names[0]]
        out.mkdir(parents=True, exist_ok=True)
        md = render_markdown(rep)
        atomic_write_text(out / "label_sensitivity.json", json.dumps(rep, indent=1))
        atomic_write_text(out / "label_sensitivity.md", md)
        typer.echo(md)
        typer.echo(f"written: {out / 'label_sensitivity.json'}, {out / 'label_sensitivity.md'}")
        return
    for name, rep in reports.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / name / "label_sensitivity.json", json.dumps(rep, indent=1))
        atomic_write_text(out / name / "label_sensitivity.md", render_markdown(rep))
    md = compare_markdown(reports, sorted(compared))
    atomic_write_text(out / "comparison.json", json.dumps(
        {name: {**{k: rep[k] for k in ("checkpoint", "conditioning", "step", "base", "summary")},
                "differing_model_keys": sorted(compared)} for name, rep in reports.items()}, indent=1))
    atomic_write_text(out / "comparison.md", md)
    typer.echo(md)
    typer.echo(f"written: {out / 'comparison.md'} and one folder per checkpoint ({', '.join(names)})")


LABEL_SENSITIVITY_REPORTS = ("label_sensitivity.json", "label_sensitivity.md")


def _remove_previous_reports(out: Path) -> None:
    """Delete what an earlier `medlt label-sensitivity` wrote into `out` (its reports, comparison.md/.json,
    and each checkpoint subfolder's reports; a subfolder left empty goes too), so that no earlier
    comparison or report stands beside the new one. Other files are left alone."""
    if not out.is_dir():
        return
    for sub in [out, *(p for p in out.iterdir() if p.is_dir())]:
        for f in (*LABEL_SENSITIVITY_REPORTS, *(("comparison.json", "comparison.md") if sub == out else ())):
            (sub / f).unlink(missing_ok=True)
        if sub != out and not any(sub.iterdir()):
            sub.rmdir()


def _check_same_timesteps(checkpoints: list[Path], num_train_timesteps: list[int]) -> None:
    """UsageError naming two checkpoints whose num_train_timesteps differ: a timestep t is another point
    of the noise schedule in each, so their prediction ratios at t cannot share a column."""
    from medlt.errors import UsageError

    for c, t in zip(checkpoints[1:], num_train_timesteps[1:], strict=True):
        if t != num_train_timesteps[0]:
            raise UsageError(f"--checkpoint: {checkpoints[0]} has num_train_timesteps={num_train_timesteps[0]} "
                             f"but {c} has {t}; timestep t is another point of the noise schedule in each, so "
                             "compare checkpoints with one num_train_timesteps (or measure each alone)")


def _checkpoint_names(checkpoints: list[Path]) -> list[str]:
    """Short unique names for checkpoints: the run folder's name, with the file's stem unless it is
    last.pt (RUN/checkpoints/step2000.pt -> RUN-step2000); numbered where two still share one."""
    from medlt.errors import UsageError

    if len({str(c.resolve()) for c in checkpoints}) != len(checkpoints):
        raise UsageError("--checkpoint: the same checkpoint is given twice")
    base = []
    for c in checkpoints:
        if c.suffix != ".pt":
            base.append(c.name or "checkpoint")
            continue
        run = c.parent.parent if c.parent.name == "checkpoints" else c.parent
        base.append(run.name + ("" if c.stem == "last" else f"-{c.stem}"))
    return [b if base.count(b) == 1 else f"{b}-{i + 1}" for i, b in enumerate(base)]


def _check_out_folder(out: Path, holds: str = "guidance.json and guidance.png") -> None:
    """OutputError (before any sampling) when --out, or a folder above it, is an existing file."""
    from medlt.errors import OutputError

    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == out else f"lies under the file {p}"
                raise OutputError(f"--out {out}: {what}, not a folder; choose a folder for {holds}")
            return


def register(app: typer.Typer) -> None:
    """Add `train`, `sample`, `tune-guidance` and `label-sensitivity` to the top-level `medlt` app."""
    app.command("train")(train_cmd)
    app.command("sample")(sample_cmd)
    app.command("tune-guidance")(tune_guidance_cmd)
    app.command("label-sensitivity")(label_sensitivity_cmd)
