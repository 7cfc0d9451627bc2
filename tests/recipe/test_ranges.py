"""Recipe values are range-checked at load: one line per problem naming the dotted key, the allowed
range and the value given; every numeric key of every section has a range."""

import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from medlt.errors import RecipeError
from medlt.recipe import Recipe, load_recipe
from medlt.recipe.checks import check_classifier_shapes, check_diffusion_shapes

BASE = {"name": "t", "data": {"format": "nih-cxr-lt", "root": "imgs"}}


@pytest.fixture
def recipe_file(tmp_path) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(BASE))
    return p


@pytest.mark.parametrize("override, expected", [
    ("training.max_steps=-5", "recipe key 'training.max_steps': must be >= 1 (got -5)"),
    ("training.log_every_steps=0", "recipe key 'training.log_every_steps': must be >= 1 (got 0)"),
    ("training.per_rank_batch_size=0", "recipe key 'training.per_rank_batch_size': must be >= 1 (got 0)"),
    ("training.checkpoint_every_steps=0", "'training.checkpoint_every_steps': must be >= 1"),
    ("training.sample_grid_every_steps=-1", "'training.sample_grid_every_steps': must be >= 0"),
    ("training.warmup_steps=-1", "'training.warmup_steps': must be >= 0"),
    ("training.lr=-1e-4", "'training.lr': must be >= 0"),
    ("training.ema_decay=1.0", "'training.ema_decay': must be < 1"),
    ("training.grad_clip_norm=0", "'training.grad_clip_norm': must be > 0"),
    ("training.class_balanced_q=1.5", "'training.class_balanced_q': must be <= 1"),
    ("training.device=gpu", "'training.device'"),
    ("data.image_size=[30, 0]", "recipe key 'data.image_size[1]': must be >= 1 (got 0)"),
    ("data.image_size=[32]", "'data.image_size': must have at least 2 item(s)"),
    ("data.image_size=[32, 32, 32]", "'data.image_size': format nih-cxr-lt needs 2 sizes"),
    ("data.num_workers=-1", "'data.num_workers': must be >= 0"),
    ("data.group_thresholds=[50, 10]", "'data.group_thresholds': must be (low, high) with low <= high"),
    ("data.ct.hu_window=[100, -100]", "'data.ct.hu_window': must be (low, high) with low < high"),
    ("data.ct.spacing_mm=[1, 0, 1]", "'data.ct.spacing_mm[1]': must be > 0"),
    ("data.ct.crop_size=[0, 8, 8]", "'data.ct.crop_size[0]': must be >= 1"),
    ("model.channels=[]", "'model.channels': must have at least 1 item(s)"),
    ("model.attention_levels=[true]", "'model.attention_levels': needs one flag per level"),
    ("model.norm_num_groups=7", "'model.channels': every value must be a multiple of model.norm_num_groups=7"),
    ("model.num_head_channels=48", "'model.num_head_channels': must divide the channels"),
    ("model.num_res_blocks=0", "'model.num_res_blocks': must be >= 1"),
    ("diffusion.num_train_timesteps=0", "'diffusion.num_train_timesteps': must be >= 1"),
    ("diffusion.beta_end=0.00001", "'diffusion.beta_end': must be > diffusion.beta_start"),
    ("diffusion.label_drop_prob=1.5", "'diffusion.label_drop_prob': must be <= 1"),
    ("sampling.num_inference_steps=2000", "'sampling.num_inference_steps': must be <= diffusion.num_train_timesteps=1000"),
    ("sampling.guidance_scale=-1", "'sampling.guidance_scale': must be >= 0"),
    ("sampling.batch_size=0", "'sampling.batch_size': must be >= 1"),
    ("regularizers=[{name: cbdm, weight: -1}]", "'regularizers[0].weight': must be >= 0"),
    ("synth.quota=to_count:0", "'synth.quota'"),
    ("synth.batch_size=0", "'synth.batch_size': must be >= 1"),
    ("classifier.epochs=0", "'classifier.epochs': must be >= 1"),
    ("classifier.lr=-1", "'classifier.lr': must be > 0"),
    ("classifier.threshold=1.5", "'classifier.threshold': must be <= 1"),
    ("classifier.class_balanced_beta=1", "'classifier.class_balanced_beta': must be < 1"),
    ("classifier.crt_lr=0", "'classifier.crt_lr': must be > 0"),
    ("evaluate.kid_subset_size=1", "'evaluate.kid_subset_size': must be >= 2"),
    ("evaluate.memorization_ratio_threshold=0", "'evaluate.memorization_ratio_threshold': must be > 0"),
    ("evaluate.ms_ssim_weights=[]", "'evaluate.ms_ssim_weights': must have at least 1 item(s)"),
    ("evaluate.roles=[tset]", "'evaluate.roles[0]'"),
    ("evaluate.max_real_reference=0", "'evaluate.max_real_reference': must be >= 1"),
    ("seed=-1", "recipe key 'seed': must be >= 0 (got -1)"),
    ("name=''", "recipe key 'name'"),
])
def test_out_of_range_value_names_key_and_range(recipe_file, override, expected):
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe_file, [override])
    lines = str(e.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"--set {override}: recipe key '"), lines  # not the file
    assert expected in lines[0]


def test_in_range_edges_load(recipe_file):
    r = load_recipe(recipe_file, ["training.warmup_steps=0", "training.sample_grid_every_steps=0",
                                  "sampling.guidance_scale=0", "training.class_balanced_q=0",
                                  "diffusion.label_drop_prob=1", "sampling.num_inference_steps=1000"])
    assert r.training.warmup_steps == 0 and r.sampling.num_inference_steps == 1000


def _sub_model(ann):
    """The recipe section model inside an annotation (Section, Section | None, list[Section])."""
    for a in (ann, *typing.get_args(ann)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _leaves(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        sub = _sub_model(field.annotation)
        if sub is not None:
            yield from _leaves(sub, f"{prefix}{name}{'[]' if typing.get_origin(field.annotation) is list else ''}.")
        else:
            yield f"{prefix}{name}", field


def _bounded(ann, meta=()) -> bool:
    """Every int/float inside `ann` carries a ge/gt/le/lt bound (non-numeric types need none)."""
    flat = [x for m in meta for x in (getattr(m, "metadata", None) or [m])]  # FieldInfo inside Annotated
    if any(getattr(m, attr, None) is not None for m in flat for attr in ("ge", "gt", "le", "lt")):
        return True
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        return _bounded(args[0], ann.__metadata__)
    if origin in (typing.Union, types.UnionType):
        return all(_bounded(a, meta) for a in args if a is not type(None))
    if origin in (list, tuple):
        return all(_bounded(a) for a in args if a is not Ellipsis)
    return ann not in (int, float)


#: numeric keys whose range is checked by a validator instead of Field bounds
CHECKED_BY_VALIDATOR = {"data.ct.hu_window"}


def test_every_numeric_key_has_a_range():
    assert not _bounded(int) and not _bounded(list[float]) and not _bounded(int | None)  # the check bites
    keys = dict(_leaves(Recipe))
    assert "training.max_steps" in keys and "regularizers[].weight" in keys and "data.ct.crop_size" in keys
    missing = [key for key, field in keys.items()
               if key not in CHECKED_BY_VALIDATOR and not _bounded(field.annotation, field.metadata)]
    assert not missing, f"numeric recipe keys without a range: {missing}"


def _recipe(overrides):
    from medlt.recipe.load import recipe_from_dict

    return recipe_from_dict({"name": "t", "data": {"format": "nih-cxr-lt", "root": "/x"}},
                            base_dir=Path("/"), overrides=overrides)


def test_image_size_must_fit_the_unet_downsampling():
    check_diffusion_shapes(_recipe(["data.image_size=[32, 64]"]))  # 4 levels: divisible by 8
    with pytest.raises(RecipeError, match=r"recipe key 'data.image_size': every size must be divisible by 8 "
                                          r".*got \[30, 30\]\); e.g. \[32, 32\]"):
        check_diffusion_shapes(_recipe(["data.image_size=[30, 30]"]))
    check_diffusion_shapes(_recipe(["data.image_size=[30, 30]", "model.channels=[32, 64]",
                                    "model.attention_levels=[false, true]"]))  # 2 levels: by 2
    with pytest.raises(RecipeError, match=r"'model.spatial_dims': is 3 but the images are 2D"):
        check_diffusion_shapes(_recipe(["model.spatial_dims=3"]))


def test_ct_axial_slices_are_checked_in_plane():
    base = {"name": "t", "data": {"format": "ct-rate", "root": "/x", "image_size": [32, 24, 10],
                                  "ct": {"mode": "2d-axial"}}}
    from medlt.recipe.load import recipe_from_dict

    check_diffusion_shapes(recipe_from_dict(base, base_dir=Path("/")))  # depth 10 is not the UNet's
    with pytest.raises(RecipeError, match="divisible by 8"):
        check_diffusion_shapes(recipe_from_dict(base, base_dir=Path("/"), overrides=["data.image_size=[32, 20, 10]"]))


def test_densenet_needs_32_pixels():
    check_classifier_shapes(_recipe(["data.image_size=[16, 16]", "classifier.architecture=resnet18"]))
    with pytest.raises(RecipeError, match="densenet121 needs every size >= 32"):
        check_classifier_shapes(_recipe(["data.image_size=[16, 16]", "classifier.architecture=densenet121"]))


def test_overlap_default_weight_is_0_1_in_schema_and_code():
    import inspect

    from medlt.diffusion.regularizers import REGULARIZERS
    from medlt.recipe.diffusion import DEFAULT_REGULARIZER_WEIGHTS, RegularizerConfig

    assert RegularizerConfig(name="overlap").weight == pytest.approx(0.1)
    assert RegularizerConfig(name="overlap", weight=0.5).weight == pytest.approx(0.5)
    for name in REGULARIZERS.names():
        code_default = inspect.signature(REGULARIZERS.get(name)).parameters["weight"].default
        assert RegularizerConfig(name=name).weight == pytest.approx(code_default), name
        assert DEFAULT_REGULARIZER_WEIGHTS[name] == pytest.approx(code_default)


def test_regularizer_option_out_of_range_is_a_recipe_error():
    from medlt.diffusion.regularizers import build_regularizers

    r = _recipe(["regularizers=[{name: ccua, options: {temperature: 0}}]"])
    with pytest.raises(RecipeError, match=r"'regularizers\[0\].options.temperature': must be a number > 0.0 \(got 0\)"):
        build_regularizers(r.regularizers)
    r = _recipe(["regularizers=[{name: cbdm, options: {tau: fast}}]"])
    with pytest.raises(RecipeError, match=r"'regularizers\[0\].options.tau': must be a number >= 0.0"):
        build_regularizers(r.regularizers)


def test_yaml_python_tag_is_named_as_unsupported_tag(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: t\ndata: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert msg == (f"{p}: line 2: unsupported YAML tag '!!python/object/apply:os.system' (tags that build "
                   f"objects are unsafe; recipes hold plain values only)")
    with pytest.raises(RecipeError, match="unsupported YAML tag '!!python/name:os.system'"):
        load_recipe(_write_base(tmp_path), ["training.lr=!!python/name:os.system"])


def _write_base(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text(yaml.safe_dump(BASE))
    return p
