"""`medlt synth --drop-near-copies EXTRACTOR`: leave out synthetic images that are near-copies of
real training images, and re-draw them with fresh seeds.

In medical data a near-copy of a training image is a privacy leak (it can carry a patient's anatomy,
implants or findings into a set shared as synthetic), not only a quality problem. The test is the
one `medlt evaluate` reports (medlt.metrics.memorization): features from EXTRACTOR (any
`--feature-extractor` of evaluate: a `medlt classify` / `medlt oracle` run, a TorchScript file or a
state dict), the real reference of evaluate (the training split, or its seeded subset of
`evaluate.max_real_reference` images), flagged when d(s, r*) / d(r*, nearest other real image) <=
`evaluate.memorization_ratio_threshold` or s is an exact copy. Each image is judged as generated
(float, model space) before it is written; evaluate judges the written files, so a ratio right at
the threshold can fall on the other side there after 8-bit quantisation.

A dropped image is replaced like a quality-filter rejection (medlt.synth.jobs.replacement_jobs):
same label and seed key, the key's next free index, so its seed is derive_seed(recipe seed,
"synth", key, index), a pure function of the run, and resume and sharding stay byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlt.errors import DataError, MedltError

OPTION = "--drop-near-copies"


@dataclass
class NearCopyFilter:
    extractor: Any  # medlt.metrics.extractors.FeatureExtractor
    recipe: Any
    settings: dict[str, Any]
    show_progress: bool = False
    _memo: Any = field(default=None, repr=False)

    def prepare(self) -> None:
        """Features of the real reference images (the heavy part; done on first use)."""
        if self._memo is not None:
            return
        from torch.utils.data import DataLoader, Subset

        from medlt.cliutils import progress
        from medlt.data.loaders import build_dataset
        from medlt.metrics.memorization import MemorizationAccumulator, real_reference_subset

        rec = self.recipe
        real_ds = build_dataset(rec, "train")
        keep, _ = real_reference_subset(len(real_ds), rec.evaluate.max_real_reference, rec.seed)
        ref = real_ds if keep is None else Subset(real_ds, keep)
        feats, ids = [], []
        for b in progress(DataLoader(ref, batch_size=rec.evaluate.batch_size, shuffle=False),
                          desc="near-copy reference features", unit="batch", disable=not self.show_progress):
            x = b["image"]
            x = x.as_tensor() if hasattr(x, "as_tensor") else x  # MONAI MetaTensor
            feats.append(self.extractor(x.float()))
            ids.extend(str(i) for i in b["id"])
        if len(ids) < 2:
            raise DataError(f"{OPTION}: needs at least 2 real training images, the training split has {len(ids)}")
        self._memo = MemorizationAccumulator(torch.cat(feats), ids, ["all"], top_k=0,
                                             ratio_threshold=self.settings["ratio_threshold"])

    def check(self, images: np.ndarray) -> list[dict[str, Any]]:
        """Per image: {"flagged", "exact_copy", "ratio" (None = undefined), "nearest_real_id"}."""
        self.prepare()
        f = self.extractor(torch.as_tensor(np.ascontiguousarray(images), dtype=torch.float32))
        r = self._memo.ratios(f)
        out = []
        for i in range(f.shape[0]):
            q = float(r["ratio"][i])
            out.append({"flagged": bool(r["flagged"][i]), "exact_copy": bool(r["exact"][i]),
                        "ratio": None if np.isnan(q) else q,
                        "nearest_real_id": self._memo.real_ids[int(r["index"][i])]})
        return out


def load_near_copy_filter(recipe, path: str | Path, *, device: str = "cpu", show_progress: bool = False,
                          image_dims: int | None = None) -> NearCopyFilter:
    """The extractor at `path` and the filter's settings (recorded in plan.json, so a resumed run must
    use the same); the real features are computed on first use. `image_dims`: 2 or 3, the
    generated images' spatial dimensions (checked against the extractor's)."""
    import medlt.classify.extractor  # noqa: F401  (registers the classifier extractors)
    from medlt.classify.load import checkpoint_of
    from medlt.metrics.extractors import load_feature_extractor
    from medlt.utils.checkpoint import file_sha256

    p = Path(path)
    if not p.exists():
        raise MedltError(f"{OPTION} {p}: no such file or folder (give a feature extractor: a `medlt classify` "
                         f"or `medlt oracle` run, a TorchScript file or a classifier state dict)")
    dims = image_dims or len(recipe.data.image_size)
    ext = load_feature_extractor(p, device=device, recipe=recipe, spatial_dims=dims)
    if ext.spatial_dims is not None and ext.spatial_dims != dims:
        raise MedltError(f"{OPTION} {p}: the extractor is {ext.spatial_dims}D but the images are {dims}D")
    f = checkpoint_of(p) if p.is_dir() else p
    settings = {"feature_extractor": ext.name, "sha256": file_sha256(f),
                "ratio_threshold": float(recipe.evaluate.memorization_ratio_threshold),
                "max_real_reference": recipe.evaluate.max_real_reference, "reference_seed": int(recipe.seed)}
    return NearCopyFilter(ext, recipe, settings, show_progress)
