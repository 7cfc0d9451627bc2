"""Long-tailed phantom datasets in the official layouts (docs/datasets.md).

`write_phantom(layout, out_dir, ...)` writes NIH-CXR-LT, MIMIC-CXR-LT or CT-RATE-shaped data whose
classes show known, visible findings (cxr_findings.py, ct.py), with long-tailed training counts
n_c = n_max * r ** (c / (C - 1)) (counts.py). Same arguments -> identical bytes.
"""

from medlt.phantom.counts import long_tail_counts, n_max_for_total, normalize_ratio
from medlt.phantom.write import DEFAULTS, LAYOUTS, PhantomSummary, write_phantom

__all__ = ["write_phantom", "PhantomSummary", "LAYOUTS", "DEFAULTS", "long_tail_counts",
           "n_max_for_total", "normalize_ratio"]
