"""recipes/phantom/bench_cpu.yaml states the same sizes as `--preset cpu`: applying the preset's keys to
it changes nothing (so `make bench-evidence` and a plain `medlt train` of that recipe agree)."""

from pathlib import Path

from medlt.bench.presets import PRESETS
from medlt.recipe import load_recipe

BENCH_CPU = Path(__file__).resolve().parents[2] / "recipes" / "phantom" / "bench_cpu.yaml"


def test_bench_cpu_recipe_states_the_cpu_preset_sizes():
    plain = load_recipe(BENCH_CPU, []).model_dump(mode="json")
    preset = load_recipe(BENCH_CPU, list(PRESETS["cpu"].sets)).model_dump(mode="json")
    assert preset == plain
