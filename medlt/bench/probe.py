"""The probe set: a balanced synthetic set (N images of every class) that the generation metrics
judge, so that class fidelity, FID/KID, MS-SSIM and memorization see every class, the head
included, at the same n whatever the downstream quota (`to_head` and `to_count` give the head
classes no synthetic image at all).

It is `medlt synth` with quota to_count:N planned as if the training split were empty (so every
class gets exactly N; multi-label: one-hot vectors), written as an ordinary synth folder
(DIR/manifest.csv) that `medlt evaluate --synthetic` reads. Noise seeds follow synth's rule
(seed, class, index) with a seed of the probe's own, `probe_seed(recipe.seed)`, so no probe image
repeats a quota image (the quota set's seeds come from the recipe seed itself). The downstream
classifier never sees the probe.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


def probe_seed(recipe_seed: int) -> int:
    """The probe's own seed namespace: a pure function of the recipe seed, never the seed itself."""
    from medlt.utils.seeding import derive_seed

    return derive_seed(int(recipe_seed), "bench-probe")


def probe_inputs(recipe, per_class: int):
    """(recipe, table, quota) that `medlt synth` plans the probe from: the recipe with the probe's
    seed, and its table with the training split reduced to one unlabelled row, so every class
    counts 0 real images and to_count:N plans exactly N per class (multi-label: one-hot vectors)."""
    from medlt.data.table import load_table

    table = load_table(recipe)
    train = recipe.data.splits.train
    frame = table.frame
    is_train = (frame["split"].astype(str) == str(train)).to_numpy()
    keep = frame[~is_train | (is_train.cumsum() == 1)].copy()
    keep.loc[keep["split"].astype(str) == str(train), list(table.label_space.names)] = 0
    probe_table = dataclasses.replace(table, frame=keep.reset_index(drop=True))
    return recipe.model_copy(update={"seed": probe_seed(recipe.seed)}), probe_table, f"to_count:{int(per_class)}"


def write_probe(recipe, out_dir: str | Path, checkpoint: str | Path, per_class: int, *, device: str = "cpu",
                show_progress: bool = False):
    """Generate the probe set into `out_dir` (resumable like `medlt synth`); returns the SynthResult.
    merged.csv of the probe folder is not used by the bench."""
    from medlt.synth.generate import run_synth

    probe_recipe, probe_table, quota = probe_inputs(recipe, per_class)
    return run_synth(probe_recipe, out_dir, checkpoint=checkpoint, table=probe_table, quota=quota,
                     device=device, show_progress=show_progress)
