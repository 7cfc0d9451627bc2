"""medlt: long-tailed medical image synthesis.

Ingest (NIH-CXR-LT, MIMIC-CXR-LT, CT-RATE) -> class-conditional diffusion with long-tail
regularizers -> class-balanced synthesis -> downstream evaluation. Every stage is a CLI verb
(`medlt --help`) driven by one recipe YAML and a Python function you can call directly.
"""

__version__ = "0.1.0"
