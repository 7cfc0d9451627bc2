"""`medlt bench`: does each long-tail method help the tail? Methods x seeds, two controls, one judge."""

from __future__ import annotations

from pathlib import Path

import typer

from medlt.cliutils import RECIPE_ARG, SET_OPT

HELP = """Benchmark long-tail diffusion methods against two controls, over seeds, with one judge.

For each method x generator seed: train the diffusion model (the recipe with only `regularizers:`
and the seed changed), synthesize with the recipe's quota, train the downstream classifier on real
+ synthetic (once per classifier seed), evaluate. Once per classifier seed: the real-only classifier
and the copies control (real + copies of real training images, as many per label vector as the
synthetic set adds: a manifest whose extra rows point at real files, source=copy). Every cell is an
ordinary run folder (`medlt report DIR/<method>/g0/c0/eval` opens one).

Judge: on a phantom, a `medlt oracle` trained on a balanced phantom from another seed is both the
class-fidelity reference classifier and the FID/KID feature extractor of every cell; on real data
pass --reference-classifier, else DIR/judge is trained: the recipe's classifier on the real training
split with class-balanced loss weights.

Methods: plain (no regularizer), cbdm, overlap, ccua, coral, t2h at their default weights; `a+b`
combines (e.g. cbdm+coral); `name(key=value, ...)` changes a weight or option, so one list sweeps
it: --methods 'plain,cbdm(weight=0.3),cbdm(tau=0.5),coral,t2h'. Every method sets the recipe's
`regularizers:`, so --set regularizers... is refused. On phantoms an ideal arm (new phantom images
of exactly the planned label vectors: a perfect generator) measures the headroom above copies.
Every arm fills one plan: the multi-label vectors are drawn with the recipe's own seed for the
copies, the ideal arm and every generator seed.
Presets: cpu (32 px phantom, `make bench-evidence`, 2 CPU cores, a converged downstream
classifier), gpu (one H100/H200, bf16, bench/evidence_gpu.sh); their --set overrides come before
yours.

Writes DIR/bench.json, DIR/bench.md and DIR/bench.html (self-contained, plots) atomically. Re-running
the same command skips finished cells (DIR/<cell>/cell.json) and resumes or redoes the rest.
Each cell records the data fingerprint (split tables, image sizes and mtimes): after the data under
data.root changed, finished cells are stale and a run is refused (use a new --out). A run holds
DIR/.lock: a second bench in the same folder is refused. --dry-run runs every input check (--out
writable, the ideal set buildable) and lists the cells and which are done or stale. Example:
medlt bench recipes/phantom/bench_cpu.yaml --preset cpu --out runs/bench
"""


def bench(
    recipe: Path = RECIPE_ARG,
    out: Path = typer.Option(..., "--out", "-o", help="Bench folder (created; re-use it to resume).",
                             show_default=False),
    methods: str = typer.Option(None, "--methods", help="Comma-separated methods (default: the preset's, else "
                                "plain,cbdm,overlap,ccua)."),
    seeds: str = typer.Option(None, "--seeds", help="Generator seeds, comma-separated (default: the preset's, "
                              "else 0,1,2)."),
    classifier_seeds: str = typer.Option(None, "--classifier-seeds", help="Downstream classifier seeds, "
                                         "comma-separated (default: the preset's, else 0)."),
    preset: str = typer.Option(None, "--preset", help="cpu | gpu: recipe sizes and default seeds for that "
                               "budget (see docs/benchmark.md)."),
    reference_classifier: Path = typer.Option(None, "--reference-classifier", help="Class fidelity judge and "
                                              "feature extractor for every cell (a `medlt classify` run trained "
                                              "on real data). Default: the phantom oracle (phantoms), else "
                                              "DIR/judge (the recipe's classifier trained on the real "
                                              "training split, class-balanced)."),
    feature_extractor: Path = typer.Option(None, "--feature-extractor", help="Another FID/KID/memorization "
                                           "extractor for every cell (default: the judge)."),
    oracle_per_class: int = typer.Option(None, "--oracle-per-class", min=2, help="Phantom oracle: balanced "
                                         "training images per class (default: the preset's, else 60)."),
    probe_per_class: int = typer.Option(None, "--probe-per-class", min=0, help="Judge each generator on a "
                                        "balanced probe set of N synthetic images per class (the head included); "
                                        "0 = judge the quota set itself. Default: the preset's, else 0."),
    cas: bool = typer.Option(True, "--cas/--no-cas", help="Classification Accuracy Score per generator "
                             "(trains one extra classifier on synthetic images only)."),
    bootstrap_resamples: int = typer.Option(1000, "--bootstrap-resamples", help="Resamples of the paired "
                                            "bootstrap of the Δ bAcc intervals (at least 100)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and which are done; run nothing."),
    sets: list[str] = SET_OPT,
) -> None:
    from medlt.bench.cells import Runner, plan_cells
    from medlt.bench.checks import (
        check_judge_inputs,
        check_out_folder,
        check_quota,
        check_regularizers_not_set,
        check_writable,
        lock_out_folder,
        stale_cells,
        stale_error,
    )
    from medlt.bench.methods import parse_methods, parse_seeds
    from medlt.bench.presets import check_preset_fits, get_preset
    from medlt.bench.settings import (
        FILE,
        check_settings,
        is_phantom,
        predated_settings,
        recorded_fingerprint,
        resolved_sets,
        table_split_label,
        write_settings,
    )
    from medlt.bench.table import build_table, write_table
    from medlt.cliutils import load_recipe_cli
    from medlt.data.fingerprint import describe_change, table_fingerprint
    from medlt.data.table import load_table
    from medlt.errors import MedltError, UsageError
    from medlt.report.paired import check_resamples
    from medlt.utils.device import check_recipe_devices

    # every input is checked here, before the first cell, and in --dry-run
    try:
        check_resamples(bootstrap_resamples)
    except MedltError as e:  # a command-line value: exit 2
        raise UsageError(str(e)) from None
    p = get_preset(preset)
    check_preset_fits(p, recipe, sets)
    all_sets = [*(p.sets if p else []), *(sets or [])]
    # an option given empty ("") is refused by the parsers, never replaced by the default
    m = parse_methods(methods if methods is not None else (p.methods if p else "plain,cbdm,overlap,ccua"))
    s = parse_seeds(seeds if seeds is not None else (p.seeds if p else "0,1,2"))
    k = parse_seeds(classifier_seeds if classifier_seeds is not None else (p.classifier_seeds if p else "0"),
                    "--classifier-seeds")
    check_out_folder(out, FILE)
    check_writable(out)
    check_regularizers_not_set(sets or [])
    r = load_recipe_cli(recipe, all_sets, uses=("diffusion", "classifier"))
    check_recipe_devices(r, ("training.device", "classifier.device"),
                         f"--preset {preset} sets it" if p and any("device=" in x for x in p.sets) else "")
    phantom = is_phantom(r)
    use_oracle = reference_classifier is None and phantom
    # a bench started before the ideal arm or the real-data judge existed resumes as it was started
    predated = predated_settings(out)
    plan = plan_cells(out, m, s, k, use_oracle, ideal=predated.get("ideal_arm", phantom),
                      judge_cell=predated.get("judge_cell", reference_classifier is None and not phantom))
    settings = {"recipe_file": str(recipe), "preset": preset, "sets": all_sets, "methods": m, "seeds": s,
                "classifier_seeds": k, "oracle_per_class": oracle_per_class or (p.oracle_per_class if p else None),
                "oracle_epochs": p.oracle_epochs if p else None, "cas": cas,
                "probe_per_class": probe_per_class if probe_per_class is not None else (p.probe_per_class if p else 0),
                "reference_classifier": str(reference_classifier) if reference_classifier else None,
                "feature_extractor": str(feature_extractor) if feature_extractor else None,
                "ideal_arm": plan.ideal, "judge_cell": plan.judge_cell, "test_split_label": table_split_label(r),
                "resolved_sets": resolved_sets(r, all_sets)}
    check_settings(out, r, settings)
    data = load_table(r)
    check_judge_inputs(r, data.label_space, reference_classifier, feature_extractor)
    check_quota(r, data)
    if plan.ideal:  # the ideal set must be buildable (it used to stop a CT bench after three cells)
        from medlt.bench.ideal import ideal_request

        ideal_request(r, data, settings["probe_per_class"])
    fingerprint = table_fingerprint(data)
    recorded = recorded_fingerprint(out)
    stale = stale_cells(plan.cells, fingerprint, recorded)
    change = (describe_change(recorded, fingerprint) if recorded else "") or "its recorded data fingerprint differs"
    if dry_run:
        if settings["resolved_sets"]:
            typer.echo("recipe keys set by " + (f"--preset {preset} and " if p else "") + "--set, as resolved: "
                       + ", ".join(settings["resolved_sets"]))
        done = sum(c.done for c in plan.cells)
        for i, c in enumerate(plan.cells, 1):
            state = "stale" if c in stale else "done " if c.done else "to do"
            typer.echo(f"{i:3d}/{len(plan.cells)} {state}  {c.label:<45} {c.dir.relative_to(out)}")
        typer.echo(f"{done} of {len(plan.cells)} cells done; nothing was run (--dry-run)")
        if stale:
            typer.echo(f"warning: {stale_error(stale, out, r.data.root, change)}; a run would be refused", err=True)
        return
    if stale:
        raise stale_error(stale, out, r.data.root, change)
    lock = lock_out_folder(out)  # held for the run: one bench per folder at a time
    try:
        write_settings(out, r, settings, fingerprint)
        runner = Runner(r, plan, oracle_per_class=settings["oracle_per_class"], oracle_epochs=settings["oracle_epochs"],
                        reference=reference_classifier, feature_extractor=feature_extractor, cas=cas,
                        probe_per_class=settings["probe_per_class"], show_progress=True)
        runner.data_fingerprint = fingerprint["sha256"]
        ran = runner.run()
        table = build_table(plan, runner.judge(), {**settings, "data_fingerprint": fingerprint},
                            n_resamples=bootstrap_resamples)
        paths = write_table(out, table)
        typer.echo(paths["md_text"])
        typer.echo(f"{len(ran)} cell(s) run, {len(plan.cells) - len(ran)} already done; table: "
                   f"{paths['json']}, {paths['md']}, {paths['html']}")
    finally:
        lock.close()


def register(app: typer.Typer) -> None:
    """Add `medlt bench`."""
    app.command("bench", help=HELP)(bench)
