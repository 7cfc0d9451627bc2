"""Method specs with options and weights (`cbdm(tau=0.5)`, `cbdm+coral`): resolution, one canonical
spelling per resolved regularizer list (the cell key), clear errors, and the bench's dry run."""

from __future__ import annotations

import pytest

from medlt.bench.methods import METHODS, canonical, method_regularizers, parse_methods
from medlt.diffusion.regularizers import REGULARIZERS
from medlt.errors import RecipeError
from medlt.recipe.diffusion import DEFAULT_REGULARIZER_WEIGHTS
from tests.cli_run import run_cli

SWEEP = "plain,cbdm(tau=0.5),cbdm(weight=0.3),coral,t2h,cbdm+coral"


def test_the_issue_sweep_resolves():
    assert parse_methods(SWEEP) == ["plain", "cbdm(tau=0.5)", "cbdm(weight=0.3)", "coral", "t2h", "cbdm+coral"]
    (cb,) = method_regularizers("cbdm(tau=0.5)")
    assert cb == {"name": "cbdm", "weight": 1.0, "options": {"tau": 0.5, "gamma": 0.25, "prior": "auto"}}
    assert method_regularizers("cbdm(weight=0.3)")[0]["weight"] == 0.3
    regs = method_regularizers("coral(kappa=0.5, temperature=0.2)+cbdm(weight=0.3,prior=uniform)")
    assert [r["name"] for r in regs] == ["cbdm", "coral"]
    assert regs[0]["options"]["prior"] == "uniform" and regs[0]["weight"] == 0.3
    assert regs[1]["options"] == {"temperature": 0.2, "kappa": 0.5} and regs[1]["weight"] == 0.05


def test_registered_defaults_are_the_components_defaults():
    for name, regs in METHODS.items():
        for r in regs:
            comp = REGULARIZERS.get(r["name"])()
            assert r["weight"] == comp.weight == DEFAULT_REGULARIZER_WEIGHTS[r["name"]], name
            for k, v in r["options"].items():
                assert getattr(comp, k, v) == v or k == "prior", (name, k)


@pytest.mark.parametrize("a,b", [
    ("cbdm", "cbdm(tau=1)"),
    ("cbdm", "cbdm(weight=1.0, tau=1.0, gamma=0.25)"),
    ("cbdm(weight=0.3)", "cbdm(weight=.3)"),
    ("cbdm+coral", "coral+cbdm"),
    ("cbdm(tau=0.5)+coral(kappa=1)", "coral(kappa=1.0)+cbdm(tau=5e-1)"),
    ("plain", " plain "),
])
def test_two_spellings_of_one_configuration_share_a_cell(a, b):
    assert canonical(a) == canonical(b)
    assert method_regularizers(a) == method_regularizers(b)
    assert method_regularizers(canonical(a)) == method_regularizers(a)  # the key resolves back
    with pytest.raises(RecipeError, match="listed twice"):
        parse_methods(f"{a},{b}")


def test_different_configurations_differ():
    names = parse_methods("cbdm,cbdm(tau=0.5),cbdm(weight=0.3),cbdm(gamma=0),coral,coral(kappa=1)")
    assert len(set(names)) == 6


@pytest.mark.parametrize("spec,msg", [
    ("cbdm(tua=0.5)", r"'tua' is not an option of 'cbdm'; did you mean 'tau'\?"),
    ("corla", r"unknown method 'corla'; did you mean 'coral'\?"),
    ("cbdm(tau=-1)", r"'cbdm\(tau=-1\)': 'tau': must be a number >= 0"),
    ("coral(temperature=0)", r"'temperature': must be a number > 0"),
    ("cbdm(weight=-0.1)", r"'weight' must be a number >= 0"),
    ("t2h(weight=0.5)", r"its weight must be 1"),
    ("cbdm(prior=unifrom)", r"prior"),
    ("cbdm(tau=0.5", r"unbalanced '\('"),
    ("cbdm(tau)", r"expected key=value"),
    ("coral(kappa=inf)", r"finite"),
    ("plain(weight=1)", r"'plain' has no options"),
    ("cbdm+cbdm(tau=2)", r"names a method twice"),
    ("plain+coral", r"cannot be combined"),
    ("cbdm(tau=../x)", r"bad value"),
    ("cbdm+", r"empty part"),
])
def test_bad_specs_are_one_line_recipe_errors(spec, msg):
    with pytest.raises(RecipeError, match=msg) as e:
        parse_methods(spec)
    assert "\n" not in str(e.value) and str(e.value).startswith("--methods")


def test_dry_run_keys_cells_by_the_canonical_spelling(tiny_recipe, tmp_path, capsys):
    code, out, err = run_cli(["bench", tiny_recipe, "--out", tmp_path / "b", "--methods",
                              "cbdm(tau=1.0),coral+cbdm(weight=0.3),t2h", "--seeds", "0", "--dry-run"], capsys)
    assert code == 0, err
    assert "cbdm/g0\n" in out or "cbdm/g0 " in out
    assert "cbdm(weight=0.3)+coral/g0" in out and "t2h/g0" in out
    code, out, err = run_cli(["bench", tiny_recipe, "--out", tmp_path / "b", "--methods", "cbdm(tua=1)",
                              "--dry-run"], capsys)
    assert code != 0 and "did you mean 'tau'" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
