"""Registries of named components (regularizers, readers, writers, extractors, ...).

Recipes pick components by short names; an unknown name is a RecipeError with a did-you-mean hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from medlt.errors import RecipeError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else a list of the valid choices."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "choose one of: " + ", ".join(sorted(choices))


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str, *, key: str | None = None) -> T:
        """Look up `name`; `key` is the recipe key the name came from, for the error message."""
        try:
            return self._items[name]
        except KeyError:
            where = f"recipe key '{key}': " if key else ""
            raise RecipeError(
                f"{where}unknown {self.kind} '{name}'; {did_you_mean(name, tuple(self._items))}"
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
