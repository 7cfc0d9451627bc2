"""Bench presets: recipe overrides and default methods / seeds for a compute budget.

A preset's `sets` are applied before the user's `--set` (which win). Sizes are chosen by
measurement; docs/benchmark.md gives the numbers.

- cpu: 32 px phantom for `make bench-evidence` on 2 CPU cores. The downstream classifier trains to
  convergence: at most 40 epochs, early stopping after 8 epochs without a better balanced-val score
  (measured: controls stop after 23-36 epochs; headroom ideal - copies +0.08 [+0.04, +0.13] and
  +0.12 [+0.08, +0.17] for classifier seeds 0 and 1; with 4 epochs it was +0.04 and -0.03, n.s.).
  Decoded images are kept in RAM (data.cache_memory): about 1 MB for the 32 px phantom, and a
  classifier epoch no longer re-reads every PNG. Measured: the whole bench (32 cells) in 36.5 min
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
    #: the recipes' spatial dims the preset's sizes are for (cpu: 2D only, its data.image_size is 2 sizes)
    spatial_dims: tuple[int, ...] = (2, 3)


PRESETS: dict[str, Preset] = {
    "cpu": Preset(
        "cpu",
        sets=["data.image_size=[32,32]", "training.max_steps=1000", "training.per_rank_batch_size=16",
              "training.checkpoint_every_steps=200", "training.sample_grid_every_steps=0",
              "training.log_every_steps=50", "sampling.num_inference_steps=10", "synth.quota=to_count:30",
              "classifier.epochs=40", "classifier.early_stopping_patience=8", "evaluate.fid_bootstrap_replicates=20",
              "data.cache_memory=true"],
        seeds="0,1", classifier_seeds="0,1", oracle_per_class=60, oracle_epochs=10, probe_per_class=10,
        about="2 CPU cores: 32 px phantom, 1000 steps per generator, seeds 0,1, classifier <= 40 epochs with "
              "early stopping (patience 8)", spatial_dims=(2,)),
    "gpu": Preset(
        "gpu",
        sets=["training.precision=bf16", "training.device=cuda", "classifier.device=cuda",
              "training.max_steps=2000", "training.per_rank_batch_size=128", "training.lr=0.001",
              "training.warmup_steps=200", "training.ema_decay=0.995", "training.checkpoint_every_steps=1000",
              "training.sample_grid_every_steps=0", "training.log_every_steps=200",
              "sampling.num_inference_steps=50", "sampling.batch_size=256", "synth.batch_size=256",
              "synth.quota=to_count:100", "classifier.epochs=15", "classifier.per_rank_batch_size=128",
              "data.cache_memory=true"],
        seeds="0,1,2", classifier_seeds="0,1", oracle_per_class=150, oracle_epochs=15, probe_per_class=64,
        about="one H100/H200-class GPU, <= 8 min (not yet measured): bf16, batch 128, 2000 steps per generator"),
}


def get_preset(name: str | None) -> Preset | None:
    if name is None:
        return None
    if name not in PRESETS:
        raise RecipeError(f"--preset: unknown preset '{name}' (choose {' or '.join(PRESETS)})")
    return PRESETS[name]


def check_preset_fits(preset: Preset | None, recipe_path, user_sets: list[str] | None) -> None:
    """RecipeError naming the preset when its sizes are not for the recipe's dimensionality (e.g.
    --preset cpu, whose data.image_size has 2 sizes, on a 3D CT recipe). The recipe is read with the
    user's --set only; an error in it is the recipe's own and is left to the normal load."""
    if preset is None or set(preset.spatial_dims) >= {2, 3}:
        return
    from medlt.recipe import load_recipe

    try:
        r = load_recipe(recipe_path, list(user_sets or []))
    except RecipeError:
        return
    dims = int(r.model.spatial_dims)
    if dims not in preset.spatial_dims:
        sizes = [x.split("=", 1)[1] for x in preset.sets if x.startswith("data.image_size=")]
        raise RecipeError(f"--preset {preset.name}: sized for {'/'.join(f'{d}D' for d in preset.spatial_dims)} "
                          f"recipes (data.image_size={sizes[0] if sizes else '?'}), but {recipe_path} is a {dims}D "
                          f"recipe (data.image_size {list(r.data.image_size)}); run it without --preset and size "
                          f"it with --set")
