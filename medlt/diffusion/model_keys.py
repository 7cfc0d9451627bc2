"""A checkpoint defines its model: the recipe keys that fix what a trained diffusion model *is*
come from the checkpoint's stored recipe when it is sampled (`medlt sample`, `synth`,
`tune-guidance`, and the bench cells that call them).

Model-defining keys: the whole `diffusion:` section (objective, rectified-flow time settings,
num_train_timesteps, schedule, betas, prediction type, clip_sample, label_drop_prob), the whole
`model:` section (UNet sizes and conditioning; `model.latent` only as "latent or pixel", its path
may have moved), `data.image_size`, and, for latent checkpoints, the autoencoder's architecture
(`autoencoder.` ARCHITECTURE_KEYS, from the autoencoder the checkpoint carries). The label space
is the checkpoint's too; the callers compare it with the recipe's classes.

Rule for a conflict: a key the recipe *sets* (in the recipe file or with `--set`; pydantic's
`model_fields_set`) to a value other than the checkpoint's is refused with one line naming the key
and both values. A key the recipe leaves out takes the checkpoint's value silently, whatever the
schema default. So the recipe a model was trained from works even when training added
`--set diffusion.objective=rflow`.

`sampling.sampler` is not model-defining, but it must fit the objective: when the recipe's sampler
does not fit the checkpoint's objective (e.g. the recipe file's `ddim` for an rflow checkpoint),
the checkpoint's own `sampling.sampler` is used. A sampler given explicitly per call (`--sampler`)
that does not fit is still an error (medlt.diffusion.sample.check_sampler).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from medlt.errors import RecipeError

#: model-defining sections (every leaf) and single keys
MODEL_SECTIONS = ("diffusion", "model")
MODEL_SINGLE_KEYS = ("data.image_size",)
#: the autoencoder keys that fix its network (the rest are training, evaluation or decoding settings)
ARCHITECTURE_KEYS = ("in_channels", "channels", "attention_levels", "num_res_blocks", "latent_channels",
                     "norm_num_groups", "encoder_attention", "decoder_attention")


def is_set(section: BaseModel, path: tuple[str, ...]) -> bool:
    """Whether the recipe set `path` itself (recipe file or --set), not left it to the schema default."""
    node: Any = section
    for part in path:
        if not isinstance(node, BaseModel) or part not in node.model_fields_set:
            return False
        node = getattr(node, part)
    return True


def _leaves(d: Any, prefix: tuple[str, ...]):
    """(path, value) of every leaf of a JSON-like dict (lists and None are leaves)."""
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, (*prefix, k))
    else:
        yield prefix, d


def _get(d: dict, path: tuple[str, ...]) -> Any:
    for part in path:
        d = d[part]
    return d


def _put(d: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        d = d.setdefault(part, {})
    d[path[-1]] = value


def _model_keys(theirs: dict, latent_config: dict | None) -> list[tuple[tuple[str, ...], Any]]:
    """(path, checkpoint value) of every model-defining key."""
    keys = []
    for sec in MODEL_SECTIONS:
        for path, value in _leaves(theirs[sec], (sec,)):
            if path[:2] == ("model", "latent"):
                continue  # compared as latent-or-pixel below
            keys.append((path, value))
    keys.append((("model", "latent"), theirs["model"].get("latent")))
    keys += [(tuple(k.split(".")), _get(theirs, tuple(k.split(".")))) for k in MODEL_SINGLE_KEYS]
    if latent_config is not None:
        keys += [(("autoencoder", k), latent_config[k]) for k in ARCHITECTURE_KEYS if k in latent_config]
    return keys


def differing_model_keys(checkpoint_recipes: list) -> frozenset[str]:
    """Dotted model-defining keys whose values differ between the checkpoints' stored recipes."""
    from medlt.recipe import recipe_to_dict

    values: dict[str, set] = {}
    for r in checkpoint_recipes:
        for path, value in _model_keys(recipe_to_dict(r), None):
            values.setdefault(".".join(path), set()).add(repr(value))
    return frozenset(k for k, v in values.items() if len(v) > 1)


def _shown(v: Any) -> str:
    return "null (pixel space)" if v is None else repr(v)


def conflicts_line(conflicts: list[tuple[str, Any, Any]], where: str) -> str:
    """One line naming every model-defining key the recipe sets otherwise than checkpoint `where`
    (conflicts: (dotted key, recipe value, checkpoint value)), with both values of each."""
    advice = ("a checkpoint defines its model: leave {} out of the recipe (or use the recipe the model was "
              "trained with)")
    if len(conflicts) == 1:
        key, mine, theirs = conflicts[0]
        return (f"recipe key '{key}' is {_shown(mine)} but checkpoint {where} was trained with {_shown(theirs)}; "
                + advice.format("the key"))
    shown = "; ".join(f"'{key}' (recipe {_shown(mine)}, checkpoint {_shown(theirs)})" for key, mine, theirs in conflicts)
    return (f"{len(conflicts)} recipe keys differ from the values checkpoint {where} was trained with: {shown}; "
            + advice.format("these keys"))


def recipe_with_model_of(recipe, checkpoint_recipe, *, where: str, latent_config: dict | None = None,
                         compared: frozenset[str] = frozenset()):
    """`recipe` with the model-defining keys of `checkpoint_recipe` (the module docstring's rule).

    `where` names the checkpoint in errors; `latent_config`: the config of the autoencoder a latent
    checkpoint carries. RecipeError when the recipe sets a model-defining key to another value, except
    for the `compared` keys (dotted): the keys on which several checkpoints measured side by side
    differ, so that no recipe value can match them all; those come from the checkpoint."""
    from medlt.recipe import Recipe, recipe_to_dict
    from medlt.recipe.diffusion import SAMPLERS_BY_OBJECTIVE
    from medlt.recipe.load import _format_validation_error

    mine, theirs = recipe_to_dict(recipe), recipe_to_dict(checkpoint_recipe)
    out = recipe_to_dict(recipe)
    conflicts = []  # (key, recipe value, checkpoint value)
    for path, value in _model_keys(theirs, latent_config):
        key = ".".join(path)
        if path == ("model", "latent"):
            differs = (mine["model"].get("latent") is None) != (value is None)
        else:
            differs = _get(mine, path) != value
        if differs and is_set(recipe, path) and key not in compared:
            conflicts.append((key, _get(mine, path), value))
        _put(out, path, value)
    if conflicts:
        raise RecipeError(conflicts_line(conflicts, where))
    objective = out["diffusion"]["objective"]
    if out["sampling"]["sampler"] not in SAMPLERS_BY_OBJECTIVE[objective]:
        out["sampling"]["sampler"] = theirs["sampling"]["sampler"]  # the sampler follows the objective
    try:
        return Recipe.model_validate(out)
    except ValidationError as e:
        raise RecipeError(_format_validation_error(e, f"recipe with the model of checkpoint {where}")) from None
