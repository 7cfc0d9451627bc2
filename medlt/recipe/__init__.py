"""Recipes: pydantic models (unknown keys rejected), YAML loading, overrides, resolved dumps."""

from medlt.recipe.load import dump_resolved, load_recipe, recipe_from_resolved, recipe_to_dict
from medlt.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe", "dump_resolved", "recipe_to_dict", "recipe_from_resolved"]
