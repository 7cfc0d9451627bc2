"""The classifier's augmentation runs on plain tensors with MONAI's metadata tracking off: same numbers
as the MetaTensor path, a plain tensor out, and the global tracking flag restored afterwards."""

import torch
from monai.data import MetaTensor, get_track_meta

from medlt.classify.augment import AugmentedDataset, classifier_augmentation
from medlt.recipe.evaluate import ClassifierConfig
from medlt.utils.tensors import as_plain_tensor


class _Images:
    def __init__(self, n: int = 12):
        g = torch.Generator().manual_seed(0)
        self.images = [MetaTensor(torch.rand(1, 16, 16, generator=g), meta={"filename_or_obj": f"x{i}.png"})
                       for i in range(n)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": i % 3}


def test_augmented_dataset_matches_the_metatensor_path_and_restores_tracking():
    cfg = ClassifierConfig(augment_rotation_deg=15.0, augment_flip=True)
    data = _Images()
    fast = AugmentedDataset(data, classifier_augmentation(cfg, 2, seed=5))
    reference = classifier_augmentation(cfg, 2, seed=5)  # the same seed, driven on MetaTensors directly
    assert get_track_meta()
    for i in range(len(data)):
        got = fast[i]["image"]
        want = reference(dict(data[i]))["image"]
        assert type(got) is torch.Tensor
        torch.testing.assert_close(got, torch.as_tensor(want), rtol=0, atol=0)
        assert not torch.equal(got, data[i]["image"].as_tensor())  # the transform did act
    assert get_track_meta()  # the global flag is back


def test_tracking_is_restored_when_a_transform_raises():
    def boom(_):
        raise ValueError("bad item")

    ds = AugmentedDataset(_Images(2), boom)
    try:
        ds[0]
    except ValueError:
        pass
    assert get_track_meta()


def test_as_plain_tensor():
    m = MetaTensor(torch.ones(2, 2))
    p = as_plain_tensor(m)
    assert type(p) is torch.Tensor and p.data_ptr() == m.data_ptr()
    t = torch.zeros(3)
    assert as_plain_tensor(t) is t
    assert type(as_plain_tensor([1.0, 2.0])) is torch.Tensor
