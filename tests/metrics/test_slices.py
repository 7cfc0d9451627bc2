import pytest
import torch

from medlt.metrics.slices import PLANES, slice_indices, volume_slices


def test_every_slice_along_each_axis():
    v = torch.arange(2 * 1 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 1, 4, 6, 8)
    ax, k = volume_slices(v, "axial")
    assert k == 8 and ax.shape == (16, 1, 4, 6)
    assert torch.equal(ax[3], v[0, :, :, :, 3]) and torch.equal(ax[8 + 5], v[1, :, :, :, 5])  # volume-major
    co, k = volume_slices(v, "coronal")
    assert k == 6 and co.shape == (12, 1, 4, 8) and torch.equal(co[6 + 2], v[1, :, :, 2, :])
    sa, k = volume_slices(v, "sagittal")
    assert k == 4 and sa.shape == (8, 1, 6, 8) and torch.equal(sa[1], v[0, :, 1])
    assert set(PLANES) == {"axial", "coronal", "sagittal"}


def test_central_fraction_and_stride_follow_maisi():
    # MAISI: start = int((1 - r) / 2 * L), end = int((1 + r) / 2 * L), every k-th
    assert list(slice_indices(100, 0.4, 1)) == list(range(30, 70))
    assert list(slice_indices(100, 0.4, 3)) == list(range(30, 70, 3))
    assert len(slice_indices(7, 1.0, 2)) == 4
    v = torch.zeros(1, 1, 10, 20, 30)
    counts = {p: volume_slices(v, p, 0.5, 2)[1] for p in PLANES}
    assert counts == {"axial": len(range(7, 22, 2)), "coronal": len(range(5, 15, 2)), "sagittal": len(range(2, 7, 2))}
    with pytest.raises(ValueError):
        slice_indices(10, 0.0, 1)
