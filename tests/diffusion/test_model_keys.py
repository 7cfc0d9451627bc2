"""A checkpoint defines its model (medlt.diffusion.model_keys): keys the recipe leaves out come from
the checkpoint, keys it sets to another value are refused naming both, the sampler follows the
objective; `medlt sample` of an rflow checkpoint with a plain recipe needs no override."""

import pytest
import yaml

from medlt.data.labels import LabelSpace
from medlt.diffusion.model_keys import differing_model_keys, is_set, recipe_with_model_of
from medlt.diffusion.train import train
from medlt.errors import RecipeError
from tests.cli_run import run_cli
from tests.diffusion.toy import toy_data, toy_recipe

RFLOW = ["diffusion.objective=rflow", "sampling.sampler=rflow"]


def test_keys_the_recipe_leaves_out_come_from_the_checkpoint(tmp_path):
    ckpt = toy_recipe(tmp_path, [*RFLOW, "diffusion.rflow.transform_scale=3.0", "diffusion.clip_sample=false"])
    mine = toy_recipe(tmp_path)  # objective, sampler, rflow, clip_sample left to their defaults
    assert not is_set(mine, ("diffusion", "objective")) and is_set(mine, ("diffusion", "num_train_timesteps"))
    r = recipe_with_model_of(mine, ckpt, where="RUN")
    assert r.diffusion.objective == "rflow" and r.diffusion.rflow.transform_scale == 3.0
    assert r.diffusion.clip_sample is False
    assert r.sampling.sampler == "rflow"  # the default ddim does not fit rflow: it follows the objective
    assert r.sampling.num_inference_steps == mine.sampling.num_inference_steps  # not model-defining
    assert r.model == ckpt.model and r.data == mine.data


@pytest.mark.parametrize("override, key, mine, theirs", [
    ("diffusion.objective=epsilon", "diffusion.objective", "'epsilon'", "'rflow'"),
    ("diffusion.num_train_timesteps=50", "diffusion.num_train_timesteps", "50", "100"),
    ("model.channels=[4, 8]", "model.channels", "[4, 8]", "[8, 16]"),
    ("diffusion.rflow.transform_scale=2.0", "diffusion.rflow.transform_scale", "2.0", "1.0"),
])
def test_a_key_the_recipe_sets_otherwise_is_refused_naming_both_values(tmp_path, override, key, mine, theirs):
    ckpt = toy_recipe(tmp_path, RFLOW)
    with pytest.raises(RecipeError) as e:
        recipe_with_model_of(toy_recipe(tmp_path, [override]), ckpt, where="RUN/checkpoints/last.pt")
    msg = str(e.value)
    assert f"recipe key '{key}' is {mine}" in msg and f"trained with {theirs}" in msg
    assert "RUN/checkpoints/last.pt" in msg and "\n" not in msg


def test_every_conflicting_key_is_named_in_one_line(tmp_path):
    ckpt = toy_recipe(tmp_path, RFLOW)
    mine = toy_recipe(tmp_path, ["diffusion.objective=epsilon", "diffusion.num_train_timesteps=50",
                                 "model.channels=[4, 8]", "model.num_res_blocks=2", "model.norm_num_groups=2",
                                 "diffusion.clip_sample=false", "data.image_size=[16, 16]"])
    with pytest.raises(RecipeError) as e:
        recipe_with_model_of(mine, ckpt, where="RUN/checkpoints/last.pt")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("7 recipe keys differ from the values checkpoint "
                                              "RUN/checkpoints/last.pt was trained with: "), msg
    for shown in ["'diffusion.objective' (recipe 'epsilon', checkpoint 'rflow')",
                  "'diffusion.num_train_timesteps' (recipe 50, checkpoint 100)",
                  "'diffusion.clip_sample' (recipe False, checkpoint True)",
                  "'model.channels' (recipe [4, 8], checkpoint [8, 16])", "'model.num_res_blocks' (recipe 2, ",
                  "'model.norm_num_groups' (recipe 2, checkpoint 4)",
                  "'data.image_size' (recipe [16, 16], checkpoint [8, 8])"]:
        assert shown in msg, shown
    assert msg.endswith("leave these keys out of the recipe (or use the recipe the model was trained with)")


def test_a_key_set_to_the_checkpoints_value_is_fine(tmp_path):
    ckpt = toy_recipe(tmp_path, RFLOW)
    r = recipe_with_model_of(toy_recipe(tmp_path, RFLOW), ckpt, where="RUN")
    assert r.diffusion.objective == "rflow"
    # epsilon checkpoint: the recipe's own fitting sampler is kept
    eps = toy_recipe(tmp_path, ["sampling.sampler=ddpm"])
    assert recipe_with_model_of(eps, toy_recipe(tmp_path), where="RUN").sampling.sampler == "ddpm"


def test_compared_keys_come_from_each_checkpoint_and_no_other(tmp_path):
    a = toy_recipe(tmp_path, ["model.multi_label_conditioning=time-embedding"], multi_label=True)
    b = toy_recipe(tmp_path, ["model.multi_label_conditioning=adaptive-norm"], multi_label=True)
    assert differing_model_keys([a, b]) == {"model.multi_label_conditioning"}
    assert differing_model_keys([a, a]) == frozenset()
    mine = toy_recipe(tmp_path, ["model.multi_label_conditioning=time-embedding"], multi_label=True)
    with pytest.raises(RecipeError, match="model.multi_label_conditioning"):
        recipe_with_model_of(mine, b, where="B")
    r = recipe_with_model_of(mine, b, where="B", compared=differing_model_keys([a, b]))
    assert r.model.multi_label_conditioning == "adaptive-norm"
    other = toy_recipe(tmp_path, ["model.multi_label_conditioning=time-embedding", "model.num_res_blocks=2"],
                       multi_label=True)
    with pytest.raises(RecipeError, match="model.num_res_blocks"):
        recipe_with_model_of(other, b, where="B", compared=differing_model_keys([a, b]))


def test_latent_checkpoint_autoencoder_architecture(tmp_path):
    """Latent checkpoints: the autoencoder they carry defines autoencoder.channels etc.; a pixel
    recipe that says nothing about it takes them, one that sets another value is refused."""
    ckpt = toy_recipe(tmp_path, ["diffusion.clip_sample=false", f"model.latent.autoencoder={tmp_path}/ae"])
    ae = {"in_channels": 1, "channels": [8, 16], "attention_levels": [False, False], "num_res_blocks": 1,
          "latent_channels": 2, "norm_num_groups": 4, "encoder_attention": True, "decoder_attention": True}
    r = recipe_with_model_of(toy_recipe(tmp_path), ckpt, where="RUN", latent_config=ae)
    assert r.model.latent is not None and r.autoencoder.latent_channels == 2 and r.autoencoder.channels == [8, 16]
    with pytest.raises(RecipeError, match=r"'autoencoder\.latent_channels' is 4 but .* trained with 2"):
        recipe_with_model_of(toy_recipe(tmp_path, ["autoencoder.latent_channels=4"]), ckpt, where="RUN",
                             latent_config=ae)
    with pytest.raises(RecipeError, match=r"'model\.latent' is null \(pixel space\)"):
        recipe_with_model_of(toy_recipe(tmp_path, ["model.latent=null"]), ckpt, where="RUN", latent_config=ae)


@pytest.fixture(scope="module")
def rflow_run(tmp_path_factory):
    """An rflow checkpoint trained with --set overrides, and the plain recipe file (sampler: ddim,
    as the shipped recipes say) it was trained from."""
    tmp = tmp_path_factory.mktemp("rflow")
    train(toy_recipe(tmp, ["training.max_steps=2", "data.classes=[alpha, beta, gamma]", *RFLOW]), tmp / "run",
          data=toy_data())
    raw = {"name": "toy", "seed": 3,
           "data": {"format": "manifest", "root": str(tmp), "image_size": [8, 8], "classes": ["alpha", "beta", "gamma"]},
           "model": {"channels": [8, 16], "attention_levels": [False, True], "num_res_blocks": 1,
                     "num_head_channels": 8, "norm_num_groups": 4, "cross_attention_dim": 16},
           "diffusion": {"num_train_timesteps": 100},
           "sampling": {"sampler": "ddim", "num_inference_steps": 3, "batch_size": 8}}
    path = tmp / "toy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return tmp, path


def test_sample_an_rflow_checkpoint_needs_no_override(rflow_run, capsys):
    tmp, recipe = rflow_run
    code, out, err = run_cli(["sample", recipe, "--checkpoint", tmp / "run", "--class", "beta", "--num", "2",
                              "--out", tmp / "s"], capsys)
    assert code == 0, err
    assert len(sorted((tmp / "s").glob("synthetic_beta_*.png"))) == 2


def test_sample_refuses_a_conflicting_objective_and_an_unfitting_sampler_option(rflow_run, capsys):
    tmp, recipe = rflow_run
    base = ["sample", recipe, "--checkpoint", tmp / "run", "--class", "beta", "--num", "1", "--out", tmp / "x"]
    code, _, err = run_cli([*base, "--set", "diffusion.objective=epsilon"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "'diffusion.objective' is 'epsilon'" in lines[0] and "trained with 'rflow'" in lines[0]
    code, _, err = run_cli([*base, "--sampler", "ddim"], capsys)  # an explicit per-call choice stays an error
    assert code == 1 and "sampler 'ddim' does not fit this model" in err
    assert not (tmp / "x").exists()


def test_synth_takes_the_objective_and_sampler_of_its_generator(tmp_path):
    """run_synth (and bench cells, which call it) with a plain recipe and an rflow generator."""
    from medlt.synth.generate import run_synth
    from tests.synth.fakes import FakeGenerator, make_recipe, make_table, one_hot_rows

    ls = LabelSpace.official("nih-cxr-lt")
    rec = make_recipe(tmp_path / "real")
    tab = make_table(tmp_path / "real", ls, one_hot_rows([2, 1] + [1] * (ls.num_classes - 2)))
    gen = FakeGenerator(ls)
    gen.recipe = make_recipe(tmp_path / "real", diffusion={"objective": "rflow"}, sampling={"sampler": "rflow"})
    res = run_synth(rec, tmp_path / "out", generator=gen, table=tab, quota="to_count:2", batch_size=4,
                    show_progress=False)
    assert res.settings["sampler"] == "rflow" and {c["sampler"] for c in gen.calls} == {"rflow"}
    conflicting = make_recipe(tmp_path / "real", diffusion={"objective": "epsilon"})
    with pytest.raises(RecipeError, match="'diffusion.objective' is 'epsilon'"):
        run_synth(conflicting, tmp_path / "out2", generator=gen, table=tab, quota="to_count:2", batch_size=4)
    assert not (tmp_path / "out2").exists()
