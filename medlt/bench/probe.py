"""The probe set: a balanced synthetic set (N images of every class) that the generation metrics
judge, so that class fidelity, FID/KID, MS-SSIM and memorization see every class, the head
included, at the same n whatever the downstream quota (`to_head` and `to_count` give the head
classes no synthetic image at all).

It is `medlt synth` with quota to_count:N planned as if the training split were empty (so every
class gets exactly N; multi-label: one-hot vectors), written as an ordinary synth folder
(DIR/manifest.csv) that `medlt evaluate --synthetic` reads. Noise seeds follow synth's rule
(recipe seed, class, index). The downstream classifier never sees the probe.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


def write_probe(recipe, out_dir: str | Path, checkpoint: str | Path, per_class: int, *, device: str = "cpu",
                show_progress: bool = False):
    """Generate the probe set into `out_dir` (resumable like `medlt synth`); returns the SynthResult."""
    from medlt.data.table import load_table
    from medlt.synth.generate import run_synth

    table = load_table(recipe)
    train = recipe.data.splits.train
    # plan against one training row with no label: every class counts 0 real images, so to_count:N
    # plans exactly N per class (merged.csv of the probe folder is not used by the bench)
    frame = table.frame
    is_train = (frame["split"].astype(str) == str(train)).to_numpy()
    keep = frame[~is_train | (is_train.cumsum() == 1)].copy()
    keep.loc[keep["split"].astype(str) == str(train), list(table.label_space.names)] = 0
    probe_table = dataclasses.replace(table, frame=keep.reset_index(drop=True))
    return run_synth(recipe, out_dir, checkpoint=checkpoint, table=probe_table, quota=f"to_count:{int(per_class)}",
                     device=device, show_progress=show_progress)
