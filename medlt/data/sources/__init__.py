"""Readers of the official label layouts. Each turns one dataset format into canonical rows.

A reader is registered by its recipe `data.format` name and has the signature
`read(cfg: DataConfig, space: LabelSpace) -> SourceRows`. Readers never stop at the first bad row:
they record a `Problem` (file + 1-based data row) and go on, so that `medlt data validate` can list
everything. Importing this package registers the four built-in formats.
"""

from medlt.data.sources.common import SOURCES, SourceRows, label_space_for

# Registration side effects (one module per format).
from medlt.data.sources import ct_rate, manifest, mimic, nih  # noqa: E402,F401  isort:skip

__all__ = ["SOURCES", "SourceRows", "label_space_for"]
