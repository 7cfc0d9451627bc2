"""Bench presets: recipe overrides and default methods / seeds for a compute budget.

A preset's `sets` are applied before the user's `--set` (which win). Sizes are chosen by
measurement; docs/benchmark.md gives the numbers.

- cpu: 32 px phantom, sized for `make bench-evidence` on 2 CPU cores in <= 60 min (estimated)
  (recipes/phantom/bench_cpu.yaml carries the same sizes; the preset re-states the keys that
  matter so that `--preset cpu` also sizes another phantom recipe).
- gpu: one H100/H200-class GPU in <= 8 min (bench/evidence_gpu.sh; not yet measured on a GPU): bf16,
  batch 128, 2000 steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medlt.errors import RecipeError


@dataclass(frozen=True)
class Preset:
    name: str
    sets: list[str] = field(default_factory=list)
    methods: str = "plain,cbdm,overlap,ccua"
    seeds: str = "0,1"
    classifier_seeds: str = "0"
    oracle_per_class: int | None = None
    oracle_epochs: int | None = None
    probe_per_class: int = 0
    about: str = ""


PRESETS: dict[str, Preset] = {
    "cpu": Preset(
        "cpu",
        sets=["data.image_size=[32,32]", "training.max_steps=1000", "training.per_rank_batch_size=16",
              "training.checkpoint_every_steps=200", "training.sample_grid_every_steps=0",
              "training.log_every_steps=50", "sampling.num_inference_steps=10", "synth.quota=to_count:30",
              "classifier.epochs=4", "evaluate.fid_bootstrap_replicates=20"],
        seeds="0,1", classifier_seeds="0,1", oracle_per_class=60, oracle_epochs=10, probe_per_class=10,
        about="2 CPU cores, <= 60 min: 32 px phantom, 1000 steps per generator, seeds 0,1"),
    "gpu": Preset(
        "gpu",
        sets=["training.precision=bf16", "training.device=cuda", "classifier.device=cuda",
              "training.max_steps=2000", "training.per_rank_batch_size=128", "training.lr=0.001",
              "training.warmup_steps=200", "training.ema_decay=0.995", "training.checkpoint_every_steps=1000",
              "training.sample_grid_every_steps=0", "training.log_every_steps=200",
              "sampling.num_inference_steps=50", "sampling.batch_size=256", "synth.batch_size=256",
              "synth.quota=to_count:100", "classifier.epochs=15", "classifier.per_rank_batch_size=128"],
        seeds="0,1,2", classifier_seeds="0,1", oracle_per_class=150, oracle_epochs=15, probe_per_class=64,
        about="one H100/H200-class GPU, <= 8 min (not yet measured): bf16, batch 128, 2000 steps per generator"),
}


def get_preset(name: str | None) -> Preset | None:
    if name is None:
        return None
    if name not in PRESETS:
        raise RecipeError(f"--preset: unknown preset '{name}' (choose {' or '.join(PRESETS)})")
    return PRESETS[name]
