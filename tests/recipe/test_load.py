from pathlib import Path

import pytest
import yaml

from medlt.errors import RecipeError
from medlt.recipe import Recipe, dump_resolved, load_recipe, recipe_from_resolved, recipe_to_dict

REPO = Path(__file__).resolve().parents[2]
ALL_RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))


def test_there_are_dataset_and_phantom_recipes():
    names = {p.relative_to(REPO / "recipes").as_posix() for p in ALL_RECIPES}
    for expected in ["nih_cxr_lt.yaml", "mimic_cxr_lt.yaml", "ct_rate.yaml", "phantom/nih_cxr_lt.yaml",
                     "phantom/mimic_cxr_lt.yaml", "phantom/ct_rate.yaml"]:
        assert expected in names


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: p.relative_to(REPO / "recipes").as_posix())
def test_every_shipped_recipe_loads(path):
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    assert recipe.data.root.is_absolute()


def _write(tmp_path, data) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


BASE = {"name": "t", "data": {"format": "nih-cxr-lt", "root": "imgs", "labels": "lbl"}}


def test_relative_paths_resolve_against_recipe_file(tmp_path, monkeypatch):
    sub = tmp_path / "sub"
    sub.mkdir()
    p = sub / "r.yaml"
    p.write_text(yaml.safe_dump(BASE))
    monkeypatch.chdir(tmp_path)
    r = load_recipe(p, ["data.labels=from_cwd"])
    assert r.data.root == sub / "imgs"
    assert r.data.labels == tmp_path / "from_cwd"


def test_unknown_key_has_did_you_mean(tmp_path):
    bad = {**BASE, "data": {**BASE["data"], "imgae_size": [3, 3]}}
    with pytest.raises(RecipeError, match=r"data\.imgae_size.*did you mean 'image_size'"):
        load_recipe(_write(tmp_path, bad))


def test_unknown_key_inside_list_items(tmp_path):
    bad = {**BASE, "regularizers": [{"name": "cbdm", "wieght": 1.0}]}
    with pytest.raises(RecipeError, match=r"regularizers\[0\]\.wieght.*did you mean 'weight'"):
        load_recipe(_write(tmp_path, bad))


def test_override_types_and_errors(tmp_path):
    p = _write(tmp_path, BASE)
    r = load_recipe(p, ["training.lr=0.001", "data.image_size=[64, 64]", "seed=7"])
    assert r.training.lr == pytest.approx(1e-3) and r.data.image_size == [64, 64] and r.seed == 7
    with pytest.raises(RecipeError, match="trainig.*did you mean 'training'"):
        load_recipe(p, ["trainig.lr=1"])
    with pytest.raises(RecipeError, match="key.path=value"):
        load_recipe(p, ["training.lr"])
    with pytest.raises(RecipeError, match=r"recipe key 'training\.lr'"):
        load_recipe(p, ["training.lr=fast"])


def test_bad_format_value_names_key(tmp_path):
    bad = {**BASE, "data": {**BASE["data"], "format": "nih"}}
    with pytest.raises(RecipeError, match=r"data\.format"):
        load_recipe(_write(tmp_path, bad))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(p)


def test_resolved_dump_round_trips(tmp_path):
    r = load_recipe(_write(tmp_path, BASE), ["training.max_steps=5"])
    out = dump_resolved(r, tmp_path / "run" / "recipe.resolved.yaml")
    again = recipe_from_resolved(yaml.safe_load(out.read_text()))
    assert recipe_to_dict(again) == recipe_to_dict(r)
    assert not list((tmp_path / "run").glob(".*tmp"))


def test_a_bad_set_is_named_not_the_recipe_file(tmp_path):
    p = _write(tmp_path, {**BASE, "training": {"lr": -2}})
    with pytest.raises(RecipeError) as e:  # the file's own bad value still names the file
        load_recipe(p)
    assert str(e.value).startswith(f"{p}: recipe key 'training.lr': must be >= 0")
    p = _write(tmp_path, BASE)
    for override, expected in [
        ("training.lr=-1", "recipe key 'training.lr': must be >= 0"),
        ("training.lrr=1", "recipe key 'training.lrr' is unknown; did you mean 'lr'?"),
        ("training={lrr: 1}", "recipe key 'training.lrr' is unknown"),
        ("regularizers=[{name: cbdm, weight: -1}]", "recipe key 'regularizers[0].weight'"),
        ("regularizers.3=x", "no list item '3' in 'regularizers' (it has 0 item(s)"),
        ("training.max_steps=[", "not valid YAML"),
    ]:
        with pytest.raises(RecipeError) as e:
            load_recipe(p, ["seed=3", override, "data.image_size=[16, 16]"])
        lines = str(e.value).splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"--set {override}: ") and expected in lines[0], lines
        assert str(p) not in lines[0]


def test_a_set_that_breaks_a_network_check_is_named(tmp_path, capsys):
    from tests.cli_run import run_cli

    p = _write(tmp_path, BASE)
    code, _, err = run_cli(["train", p, "--out", tmp_path / "run", "--set", "data.image_size=[9, 9]"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: --set data.image_size=[9, 9]: recipe key 'data.image_size': every size")


def test_multi_label_conditioning_is_refused_for_single_label_data(tmp_path):
    key = "recipe key 'model.multi_label_conditioning': is 'time-embedding' but the data is single-label"
    p = _write(tmp_path, {**BASE, "model": {"multi_label_conditioning": "time-embedding"}})
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    assert str(e.value).startswith(f"{p}: {key}") and "leave the key out" in str(e.value)
    with pytest.raises(RecipeError) as e:
        load_recipe(_write(tmp_path, BASE), ["model.multi_label_conditioning=time-embedding"])
    assert str(e.value).startswith(f"--set model.multi_label_conditioning=time-embedding: {key}")
    manifest = {"name": "t", "data": {"format": "manifest", "root": "x", "classes": ["a", "b"]},
                "model": {"multi_label_conditioning": "cross-attention"}}
    with pytest.raises(RecipeError, match="is 'cross-attention' but the data is single-label"):
        load_recipe(_write(tmp_path, manifest))
    # the schema default written out (as in every resolved recipe) and multi-label data are fine
    load_recipe(_write(tmp_path, BASE), ["model.multi_label_conditioning=adaptive-norm"])
    multi = load_recipe(_write(tmp_path, BASE), ["data.multi_label=true", "model.multi_label_conditioning=time-embedding"])
    assert multi.model.multi_label_conditioning == "time-embedding"
    ct = {"name": "t", "data": {"format": "ct-rate", "root": "x", "image_size": [8, 8, 8]},
          "model": {"multi_label_conditioning": "time-embedding", "spatial_dims": 3}}
    assert load_recipe(_write(tmp_path, ct)).model.multi_label_conditioning == "time-embedding"
    single = load_recipe(_write(tmp_path, BASE))
    assert recipe_from_resolved(recipe_to_dict(single)).model.multi_label_conditioning == "adaptive-norm"
