"""bench/latent.py --smoke: both rows run and produce the same output resolution (2D and 3D)."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "latent.py"


@pytest.mark.parametrize("size", [["32", "32"], ["16", "16", "8"]])
def test_smoke(size, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_latent", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    med = mod.main(["--smoke", "--device", "cpu", "--size", *size, "--json", str(tmp_path / "m.json")])
    assert med["pixel"]["output_shape"] == med["latent"]["output_shape"] == [1, *map(int, size)]
    assert med["latent"]["diffused_shape"][0] == 2 and med["latent"]["diffused_shape"][1] == int(size[0]) // 2
    assert all(med[m]["train_step_s"] > 0 and med[m]["sample_s"] > 0 for m in med)
    assert (tmp_path / "m.json").is_file()
