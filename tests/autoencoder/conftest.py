import pytest

from medlt.autoencoder.train import train_autoencoder
from tests.autoencoder.tiny import tiny_recipe
from tests.diffusion.toy import ToyDataset


@pytest.fixture(scope="module")
def ae2d(tmp_path_factory):
    """A 6-step 2D autoencoder run on the 8x8 toy set (single- and multi-label sets share images)."""
    tmp = tmp_path_factory.mktemp("ae2d")
    train_autoencoder(tiny_recipe(tmp), tmp / "ae", dataset=ToyDataset())
    return tmp / "ae"


@pytest.fixture(scope="module")
def ae3d(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ae3d")
    train_autoencoder(tiny_recipe(tmp, depth=4), tmp / "ae", dataset=ToyDataset(depth=4))
    return tmp / "ae"
