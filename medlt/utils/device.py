"""The one check of a device request: a `--device` option or a recipe key (training.device,
classifier.device, autoencoder.training.device). Every verb that takes a device calls it right
after reading its options and recipe, so asking for CUDA on a machine or torch build without it
is one line naming the option or key, before any data is read or any file written.

Accepted: "auto" (CUDA when available, else CPU), "cpu", "cuda" and "cuda:N".
"""

from __future__ import annotations

import re

from medlt.errors import MedltError, RecipeError

_CUDA = re.compile(r"cuda(?::(\d+))?")


def _fail(where: str, name: str, why: str) -> MedltError:
    """A RecipeError for a recipe key ("training.device"), a MedltError for an option ("--device")."""
    if where.startswith("-"):
        return MedltError(f"{where} {name}: {why}")
    return RecipeError(f"recipe key '{where}': {name}: {why}")


def resolve_device(name: str, where: str = "--device"):
    """The torch.device that `name` asks for; MedltError / RecipeError (naming `where`) when it is
    not auto/cpu/cuda[:N], or asks for CUDA that this torch or this machine does not have."""
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    m = _CUDA.fullmatch(name)
    if m is None:
        raise _fail(where, name, "not a device; use auto, cpu, cuda or cuda:N")
    if torch.version.cuda is None:
        raise _fail(where, name, f"this torch has no CUDA (torch {torch.__version__}); install a CUDA build "
                                 f"of torch or use cpu")
    if not torch.cuda.is_available():
        raise _fail(where, name, f"no CUDA GPU is visible (torch {torch.__version__}, CUDA {torch.version.cuda}; "
                                 f"check the NVIDIA driver and CUDA_VISIBLE_DEVICES) or use cpu")
    index = int(m.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise _fail(where, name, f"only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})")
    return torch.device(name)


def check_recipe_devices(recipe, keys: tuple[str, ...], note: str = "") -> None:
    """resolve_device for each dotted recipe key in `keys` (e.g. "training.device"); `note` is added
    to the message (e.g. "set by --preset gpu")."""
    for key in keys:
        value = recipe
        for part in key.split("."):
            value = getattr(value, part)
        try:
            resolve_device(value, key)
        except MedltError as e:
            if note:
                raise type(e)(f"{e} ({note})") from None
            raise
