"""merged.csv keeps integer columns integers: the provenance columns only synthetic rows carry
(e.g. `steps`) are empty for real rows, and must not turn "5" into "5.0"."""

from __future__ import annotations

import csv

from medlt.data.labels import LabelSpace
from medlt.synth.generate import run_synth
from tests.synth.fakes import FakeGenerator, make_recipe, make_table, one_hot_rows

NIH = LabelSpace.official("nih-cxr-lt")
COUNTS = [3, 2, 1] + [1] * 17


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_steps_is_an_integer_in_manifest_and_merged(tmp_path):
    rec = make_recipe(tmp_path / "real")
    tab = make_table(tmp_path / "real", NIH, one_hot_rows(COUNTS))
    out = tmp_path / "syn"
    run_synth(rec, out, generator=FakeGenerator(NIH), table=tab, quota="to_count:2", steps=5,
              show_progress=False)
    manifest, merged = _rows(out / "manifest.csv"), _rows(out / "merged.csv")
    assert {r["steps"] for r in manifest} == {"5"}
    syn = [r for r in merged if r["source"] == "synthetic"]
    real = [r for r in merged if r["source"] == "real"]
    assert syn and real
    assert {r["steps"] for r in syn} == {"5"}          # not "5.0"
    assert {r["steps"] for r in real} == {""}          # empty, not "nan"
    assert all(r[n] in ("0", "1") for r in merged for n in NIH.names)
    assert {r["seed"].isdigit() for r in syn} == {True}
