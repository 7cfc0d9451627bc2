"""One 2D phantom image: anatomy (cxr.py) plus finding patterns (cxr_findings.py).

Kept apart from both so that cxr_findings can build on cxr's frame without a cycle.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from medlt.phantom.cxr import Anatomy, base_density, build_frame, finish, sample_anatomy
from medlt.phantom.cxr_findings import PATTERNS


def render_cxr(patterns: list[str], size: int, rng: np.random.Generator,
               anatomy: Anatomy | None = None) -> np.ndarray:
    """One PA chest image (float32 (size, size) in [0, 1]) showing every finding pattern in
    `patterns` (names from cxr_findings.PATTERNS; [] = no finding). `anatomy` is the patient's
    (sample_anatomy); findings that change anatomy work on a copy."""
    if size < 16:
        raise ValueError(f"image size {size} too small (>= 16)")
    anat = replace(sample_anatomy(rng) if anatomy is None else anatomy)
    anat.vessels = list(anat.vessels)
    for name in patterns:
        modify = PATTERNS[name].modify
        if modify is not None:
            modify(anat, rng)
    f = build_frame(size, anat, rng)
    D = base_density(f)
    for name in patterns:
        draw = PATTERNS[name].draw
        if draw is not None:
            D = D + draw(f, rng)
    return finish(D, f, rng)
