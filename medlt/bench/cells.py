"""The cells of a bench, their run folders, done markers, and running one cell.

Layout of a bench folder DIR (every run folder is an ordinary medlt run folder):

  DIR/bench.settings.json          recipe (resolved), methods, seeds, preset, judge and extractor
  DIR/bench.log                    one line per cell started / finished (appended)
  DIR/oracle/                      `medlt oracle` run (phantoms only), the shared judge
  DIR/judge/                       real data without --reference-classifier: the judge, the
                                   recipe's classifier trained on the real data for balance
                                   (class-balanced loss weights)
  DIR/real/c<k>/{classifier,eval}  real-only classifier, classifier seed k
  DIR/copies/c<k>/{copies.csv,classifier,eval}
                                   real + copies of real images, as many per label vector as the
                                   synthetic set adds (medlt.bench.copies)
  DIR/ideal/set/                   phantoms only: the perfect-synthesis set (medlt.bench.ideal)
  DIR/ideal/c<k>/{classifier,eval} real + ideal images, classifier seed k
  DIR/<method>/g<s>/{generator,synth,probe}
                                   diffusion model (generator seed s), its synthetic set (the
                                   recipe's quota) and the balanced probe set (medlt.bench.probe)
  DIR/<method>/g<s>/c<k>/{classifier,eval}
                                   downstream classifier on real + synthetic, classifier seed k;
                                   eval/ is a `medlt evaluate` folder (`medlt report` opens it)

A cell is finished when DIR/.../cell.json exists; it is written atomically as the cell's last act
and records its wall time: the sum over its attempts (`wall_s`, with `attempts` and
`wall_s_last_attempt`). An attempt that stops with an error or Ctrl-C appends its time to
DIR/.../attempts.json (a process killed outright cannot; its time is lost). An unfinished generator cell resumes through `medlt train --resume`
(same losses and data order as an uninterrupted run) and `medlt synth`'s own resume (identical
bytes); an unfinished classifier cell is redone from scratch.

Judge and features: every classifier cell with a synthetic set is evaluated with ONE reference
classifier (class fidelity) and ONE feature extractor (FID/KID, memorization): the phantom oracle
(`medlt oracle`, trained on a balanced phantom from another seed) when the data is a phantom, else
the `--reference-classifier` given; without either, DIR/judge: the recipe's classifier trained
on the real training split with class-balanced loss weights (classifier.method=class-balanced),
whatever classifier.method says, because a judge trained on the natural long tail recalls the
rarest classes poorly and so reads their fidelity near 0. Chosen by measuring tail recall on the
phantom's long-tailed split against ERM and cRT (docs/benchmark.md). The oracle is preferred as the extractor because it was trained on none of the
images any cell compares (a real-only classifier's features have seen the real training images
that memorization and FID compare against). Generation metrics (fidelity, CAS, FID/KID, MS-SSIM,
memorization) depend on the generator, the judge and the extractor only, so they are computed in
the first classifier seed's cell of each generator (on the probe set when --probe-per-class > 0,
else on the quota set); later classifier seeds score classification only.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from medlt.bench.methods import method_regularizers
from medlt.errors import MedltError
from medlt.utils.atomic import atomic_write_text

MARKER = "cell.json"
#: the wall time of a cell's unfinished attempts (seconds, one entry per attempt)
ATTEMPTS = "attempts.json"

#: the real-data judge's classifier.method: of erm, crt and class-balanced, the best tail recall on the
#: phantom's long-tailed training split (docs/benchmark.md, "the judge on real data")
JUDGE_METHOD = "class-balanced"


@dataclass(frozen=True)
class Cell:
    """One unit of work. kind: oracle | judge | real | copies | ideal-set | ideal | generator | classifier."""

    kind: str
    dir: Path
    method: str | None = None
    gen_seed: int | None = None
    clf_seed: int | None = None

    @property
    def label(self) -> str:
        if self.kind in ("oracle", "judge", "ideal-set"):
            return {"oracle": "oracle", "judge": "judge (real data, class-balanced)", "ideal-set": "ideal set"}[self.kind]
        if self.kind in ("real", "copies", "ideal"):
            return f"{self.kind} classifier seed {self.clf_seed}"
        if self.kind == "generator":
            return f"{self.method} seed {self.gen_seed}"
        return f"{self.method} seed {self.gen_seed} classifier seed {self.clf_seed}"

    @property
    def marker(self) -> Path:
        return self.dir / MARKER

    @property
    def done(self) -> bool:
        return self.marker.is_file()

    def record(self) -> dict:
        return json.loads(self.marker.read_text())


@dataclass
class BenchPlan:
    out: Path
    methods: list[str]
    seeds: list[int]
    classifier_seeds: list[int]
    use_oracle: bool
    cells: list[Cell] = field(default_factory=list)
    #: the perfect-synthesis arm (phantoms only)
    ideal: bool = False
    #: DIR/judge: a balanced real-data judge (real data without --reference-classifier)
    judge_cell: bool = False

    @property
    def controls(self) -> list[str]:
        return ["real", "copies", *(["ideal"] if self.ideal else [])]

    def real(self, k: int) -> Cell:
        return Cell("real", self.out / "real" / f"c{k}", clf_seed=k)

    def copies(self, k: int) -> Cell:
        return Cell("copies", self.out / "copies" / f"c{k}", clf_seed=k)

    def ideal_set(self) -> Cell:
        return Cell("ideal-set", self.out / "ideal" / "set")

    def ideal_cell(self, k: int) -> Cell:
        return Cell("ideal", self.out / "ideal" / f"c{k}", clf_seed=k)

    def control(self, name: str, k: int) -> Cell:
        return {"real": self.real, "copies": self.copies, "ideal": self.ideal_cell}[name](k)

    def generator(self, m: str, s: int) -> Cell:
        return Cell("generator", self.out / m / f"g{s}", method=m, gen_seed=s)

    def classifier(self, m: str, s: int, k: int) -> Cell:
        return Cell("classifier", self.out / m / f"g{s}" / f"c{k}", method=m, gen_seed=s, clf_seed=k)


def plan_cells(out: Path, methods: list[str], seeds: list[int], classifier_seeds: list[int],
               use_oracle: bool, *, ideal: bool = False, judge_cell: bool = False) -> BenchPlan:
    """Cells in run order: the judge (oracle or real-data judge), the controls (real, copies, and
    on phantoms the ideal set and its classifiers), then per generator seed and method the
    generator and its classifier cells."""
    p = BenchPlan(Path(out), list(methods), list(seeds), list(classifier_seeds), use_oracle, ideal=ideal,
                  judge_cell=judge_cell)
    if use_oracle:
        p.cells.append(Cell("oracle", p.out / "oracle"))
    if judge_cell:
        p.cells.append(Cell("judge", p.out / "judge"))
    for k in classifier_seeds:
        p.cells += [p.real(k), p.copies(k)]
    if ideal:
        p.cells.append(p.ideal_set())
        p.cells += [p.ideal_cell(k) for k in classifier_seeds]
    for s in seeds:
        for m in methods:
            p.cells.append(p.generator(m, s))
            p.cells += [p.classifier(m, s, k) for k in classifier_seeds]
    return p


# ---------------------------------------------------------------------------------------------
# recipes of the cells


def with_changes(recipe, *, seed: int | None = None, method: str | None = None):
    """`recipe` with another seed and/or the regularizers of `method` (nothing else changes)."""
    from medlt.recipe import recipe_from_resolved, recipe_to_dict

    d = recipe_to_dict(recipe)
    if seed is not None:
        d["seed"] = int(seed)
    if method is not None:
        d["regularizers"] = method_regularizers(method)
    return recipe_from_resolved(d)


@dataclass
class Judge:
    """The one reference classifier (class fidelity) and feature extractor (FID/KID) of a bench."""

    reference: Path
    extractor: Path
    kind: str  # phantom-oracle | reference-classifier | real-balanced-classifier | real-only-classifier

    @property
    def source(self) -> str:
        """What report.json records as the judge's source."""
        return {"phantom-oracle": "medlt bench: phantom oracle (DIR/oracle)",
                "reference-classifier": "medlt bench --reference-classifier",
                "real-balanced-classifier": "medlt bench: real-data judge trained for balance (DIR/judge, class-balanced)",
                "real-only-classifier": "medlt bench: real-only classifier of the first classifier seed"}[self.kind]

    @property
    def trained_on_compared_images(self) -> bool:
        """True when the extractor's features were trained on the real training images that
        memorization and FID compare against (a caveat on those numbers)."""
        return self.kind != "phantom-oracle"


def earlier_attempts(c: Cell) -> list[float]:
    """Wall seconds of the cell's earlier, unfinished attempts (DIR/.../attempts.json; [] if none)."""
    f = c.dir / ATTEMPTS
    try:
        v = json.loads(f.read_text()) if f.is_file() else []
    except (OSError, ValueError):
        return []
    return [float(x) for x in v] if isinstance(v, list) and all(isinstance(x, int | float) for x in v) else []


class Runner:
    """Runs the cells of a plan with one base recipe; `log(line)` gets the progress lines."""

    #: sha256 of the data fingerprint (medlt.data.fingerprint) each finished cell records
    data_fingerprint: str | None = None

    def __init__(self, recipe, plan: BenchPlan, *, oracle_per_class: int | None = None,
                 oracle_epochs: int | None = None, reference: Path | None = None,
                 feature_extractor: Path | None = None, cas: bool = True, probe_per_class: int = 0,
                 show_progress: bool = False,
                 log: Callable[[str], None] | None = None):
        self.recipe = recipe
        self.plan = plan
        self.oracle_per_class = oracle_per_class
        self.oracle_epochs = oracle_epochs
        self.reference = reference
        self.feature_extractor = feature_extractor
        self.cas = cas
        self.probe_per_class = int(probe_per_class)
        self.show_progress = show_progress
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    # -- judge -----------------------------------------------------------------------------
    def judge(self) -> Judge:
        p = self.plan
        if self.reference is not None:
            ref, kind = Path(self.reference), "reference-classifier"
        elif p.use_oracle:
            ref, kind = p.out / "oracle", "phantom-oracle"
        elif p.judge_cell:
            ref, kind = p.out / "judge", "real-balanced-classifier"
        else:
            ref, kind = p.real(p.classifier_seeds[0]).dir / "classifier", "real-only-classifier"
        ext = Path(self.feature_extractor) if self.feature_extractor is not None else ref
        return Judge(ref, ext, kind)

    # -- running ---------------------------------------------------------------------------
    def run(self, cells: list[Cell] | None = None) -> list[Cell]:
        """Run every unfinished cell (in plan order); returns the cells that were run."""
        cells = self.plan.cells if cells is None else cells
        ran = []
        n = len(cells)
        for i, c in enumerate(cells, 1):
            if c.done:
                self.log(f"cell {i}/{n} {c.label}: done, skipped")
                continue
            self._bench_log(f"start {c.dir.relative_to(self.plan.out)}")
            earlier = earlier_attempts(c)  # read before a cell that is redone from scratch clears its folder
            t0 = time.perf_counter()
            try:
                extra = getattr(self, f"_run_{c.kind.replace('-', '_')}")(
                    c, lambda what, i=i, c=c: self.log(f"cell {i}/{n} {c.label}: {what}"))
            except BaseException:  # an error or Ctrl-C: keep this attempt's time for the resumed cell
                c.dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(c.dir / ATTEMPTS, json.dumps([*earlier, round(time.perf_counter() - t0, 3)]) + "\n")
                raise
            last = time.perf_counter() - t0
            wall = last + sum(earlier)
            rec = {"cell": str(c.dir.relative_to(self.plan.out)), "kind": c.kind, "method": c.method,
                   "generator_seed": c.gen_seed, "classifier_seed": c.clf_seed, "wall_s": round(wall, 3),
                   "attempts": len(earlier) + 1, "wall_s_last_attempt": round(last, 3),
                   "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "data_fingerprint": self.data_fingerprint, **(extra or {})}
            atomic_write_text(c.marker, json.dumps(rec, indent=1) + "\n")
            (c.dir / ATTEMPTS).unlink(missing_ok=True)  # summed into cell.json
            self._bench_log(f"done {c.dir.relative_to(self.plan.out)} {wall:.1f}s")
            self.log(f"cell {i}/{n} {c.label}: finished in {wall:.1f} s")
            ran.append(c)
        return ran

    def _bench_log(self, line: str) -> None:
        self.plan.out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with open(self.plan.out / "bench.log", "a") as f:
            f.write(f"{stamp} {line}\n")

    def _device(self) -> str:
        from medlt.classify.train import resolve_device

        return str(resolve_device(self.recipe.classifier.device))

    def _run_oracle(self, c: Cell, say) -> dict:
        from medlt.classify.oracle import build_oracle

        r = self.recipe
        if self.oracle_epochs is not None:
            r = r.model_copy(update={"classifier": r.classifier.model_copy(update={"epochs": self.oracle_epochs})})
        say("medlt oracle ...")
        res = build_oracle(r, c.dir, per_class=self.oracle_per_class, show_progress=self.show_progress)
        return {"oracle_test": res["test_on_evaluated_phantom"]}

    def _classify(self, recipe, run: Path, say, train_manifest: Path | None = None) -> None:
        from medlt.classify.data import classifier_data
        from medlt.classify.train import fit_classifier

        if run.exists():  # an unfinished classifier cell is redone from scratch
            shutil.rmtree(run)
        say("classify ...")
        data = classifier_data(recipe, train_manifest=train_manifest)
        fit_classifier(recipe, data, run, show_progress=self.show_progress)

    def _evaluate(self, recipe, classifier: Path, out: Path, say, synthetic: Path | None = None) -> None:
        from medlt.classify.evaluation import evaluate
        from medlt.report.write import write_report

        if out.exists():
            shutil.rmtree(out)
        kw = {}
        if synthetic is not None:
            j = self.judge()
            kw = dict(synthetic_dir=synthetic, feature_extractor=[j.extractor], reference_classifier=j.reference,
                      cas=self.cas, reference_source=j.source)
        say("evaluate" + (" (classification, generation metrics" + (", CAS" if self.cas else "") + ") ..."
                          if synthetic is not None else " ..."))
        result, assets = evaluate(recipe, classifier, out, device=self._device(), show_progress=self.show_progress,
                                  **kw)
        write_report(out, result, assets)

    def _run_real(self, c: Cell, say) -> dict:
        r = with_changes(self.recipe, seed=c.clf_seed)
        self._classify(r, c.dir / "classifier", say)
        self._evaluate(r, c.dir / "classifier", c.dir / "eval", say)
        return {}

    def _run_judge(self, c: Cell, say) -> dict:
        from medlt.classify.data import classifier_data
        from medlt.classify.train import fit_classifier

        r = self.recipe
        if r.classifier.method != JUDGE_METHOD:
            r = r.model_copy(update={"classifier": r.classifier.model_copy(update={"method": JUDGE_METHOD})})
        if c.dir.exists():  # redone from scratch, like every classifier cell
            shutil.rmtree(c.dir)
        say(f"classify (judge: real training split, {JUDGE_METHOD}) ...")
        fit_classifier(r, classifier_data(r), c.dir, show_progress=self.show_progress)
        return {"judge_method": JUDGE_METHOD}

    def _run_ideal_set(self, c: Cell, say) -> dict:
        from medlt.bench.ideal import write_ideal_set

        say("ideal set (new phantom images for the quota plan) ...")
        return write_ideal_set(self.recipe, c.dir, judged_per_class=self.probe_per_class,
                               show_progress=self.show_progress)

    def _run_ideal(self, c: Cell, say) -> dict:
        s = self.plan.ideal_set()
        if not s.done:
            raise MedltError(f"{c.dir}: the ideal set {s.dir} is not finished")
        r = with_changes(self.recipe, seed=c.clf_seed)
        self._classify(r, c.dir / "classifier", say, train_manifest=s.dir / "ideal.csv")
        first = c.clf_seed == self.plan.classifier_seeds[0]
        self._evaluate(r, c.dir / "classifier", c.dir / "eval", say, synthetic=s.dir if first else None)
        return {"generation_metrics": first}

    def _run_copies(self, c: Cell, say) -> dict:
        from medlt.bench.copies import write_copies_manifest
        from medlt.data.table import load_table

        r = with_changes(self.recipe, seed=c.clf_seed)
        say("copies manifest ...")
        # the copies follow the synthesis plan of the recipe's own seed (what each synthetic set adds)
        manifest = write_copies_manifest(self.recipe, load_table(self.recipe), c.dir)
        self._classify(r, c.dir / "classifier", say, train_manifest=manifest)
        self._evaluate(r, c.dir / "classifier", c.dir / "eval", say)
        import pandas as pd

        from medlt.bench.copies import off_plan_rows
        from medlt.synth.generate import make_plan

        table = load_table(self.recipe)
        frame = pd.read_csv(manifest)
        n = int((frame["source"] == "copy").sum())
        off = off_plan_rows(make_plan(self.recipe, table), frame, table.label_space.names)
        if off:
            say(f"{off} of {n} copies carry other labels than the plan (no real image has the planned vector)")
        return {"copies": n, "copies_off_plan": off}

    def _run_generator(self, c: Cell, say) -> dict:
        import torch

        from medlt.diffusion.train import CHECKPOINT, train
        from medlt.synth.generate import run_synth

        r = with_changes(self.recipe, seed=c.gen_seed, method=c.method)
        gdir = c.dir / "generator"
        ckpt = gdir / CHECKPOINT
        resume = ckpt.is_file()
        say(f"train ({r.training.max_steps} steps{', resuming' if resume else ''}) ...")
        train(r, gdir, resume=resume)
        say("synth ...")
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        # the plan's multi-label vectors come from the base recipe's seed: every generator seed fills the
        # plan that the copies control and the ideal arm fill (noise seeds stay the generator seed's)
        res = run_synth(r, c.dir / "synth", checkpoint=ckpt, device=dev, show_progress=self.show_progress,
                        plan_seed=self.recipe.seed)
        n_probe = 0
        if self.probe_per_class > 0:
            from medlt.bench.probe import write_probe

            say(f"probe ({self.probe_per_class} per class) ...")
            n_probe = len(write_probe(r, c.dir / "probe", ckpt, self.probe_per_class, device=dev,
                                      show_progress=self.show_progress).final_jobs)
        from medlt.utils.checkpoint import load_checkpoint

        state = load_checkpoint(ckpt)  # weights_only=True like every checkpoint read
        steps = int(state.get("step", r.training.max_steps))
        if steps != r.training.max_steps:
            raise MedltError(f"{ckpt}: at step {steps}, expected {r.training.max_steps}")
        return {"generator_steps": steps, "synthetic_images": len(res.final_jobs), "probe_images": n_probe,
                "resumed": resume}

    def _run_classifier(self, c: Cell, say) -> dict:
        gen = self.plan.generator(c.method, c.gen_seed)
        if not gen.done:
            raise MedltError(f"{c.dir}: its generator cell {gen.dir} is not finished")
        r = with_changes(self.recipe, seed=c.clf_seed, method=c.method)
        synth = gen.dir / "synth"
        self._classify(r, c.dir / "classifier", say, train_manifest=synth / "merged.csv")
        first = c.clf_seed == self.plan.classifier_seeds[0]
        judged = gen.dir / "probe" if self.probe_per_class > 0 else synth
        self._evaluate(r, c.dir / "classifier", c.dir / "eval", say, synthetic=judged if first else None)
        return {"generation_metrics": first}
