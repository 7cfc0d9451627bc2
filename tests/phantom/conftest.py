import pytest

from medlt.phantom import write_phantom

SMALL = dict(num_images=60, image_size=32, imbalance_ratio=0.05, seed=3, per_class_val=2, per_class_test=3)


@pytest.fixture(scope="session")
def nih_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("nih")
    return write_phantom("nih-cxr-lt", out / "p", **SMALL)


@pytest.fixture(scope="session")
def nih_multi_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("nihml")
    return write_phantom("nih-cxr-lt", out / "p", multi_label=True, **SMALL)


@pytest.fixture(scope="session")
def mimic_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mimic")
    return write_phantom("mimic-cxr-lt", out / "p", **SMALL)


@pytest.fixture(scope="session")
def ct_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ct")
    return write_phantom("ct-rate", out / "p", num_images=16, image_size=24, imbalance_ratio=0.05, seed=3)


@pytest.fixture(scope="session")
def small() -> dict:
    return dict(SMALL)
