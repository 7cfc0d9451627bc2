"""Plain tensors where MONAI's metadata is not needed.

Images leave medlt's readers as MONAI MetaTensors (they carry the affine and the source path). Every
torch operation on a MetaTensor goes through its ``__torch_function__`` hook, which copies the metadata
onto each result; for per-image random transforms on small images that hook costs more than the
arithmetic. Code that never reads the metadata drops it once.
"""

from __future__ import annotations

import torch


def as_plain_tensor(x) -> torch.Tensor:
    """`x` as a plain torch.Tensor sharing its storage (a MetaTensor loses its metadata; a plain tensor
    is returned as is; anything else goes through torch.as_tensor)."""
    if type(x) is torch.Tensor:
        return x
    if isinstance(x, torch.Tensor):
        return x.as_subclass(torch.Tensor)
    return torch.as_tensor(x)
