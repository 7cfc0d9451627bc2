import numpy as np
import pytest


@pytest.fixture
def pattern() -> np.ndarray:
    """Asymmetric test image (H=40, W=56): left->right ramp, bright bar at the top-left, dark
    square at the bottom-right. Any flip or transpose changes it."""
    h, w = 40, 56
    _, xx = np.mgrid[0:h, 0:w]
    img = 0.2 + 0.5 * xx / (w - 1)
    img[2:6, 3:30] = 1.0       # top-left bar
    img[30:38, 44:52] = 0.0    # bottom-right square
    return img.astype(np.float32)
