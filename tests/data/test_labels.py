import pytest

from medlt.data.labels import LabelSpace, group_of_count, official_classes, official_train_counts
from medlt.errors import DataError


def test_official_class_lists():
    assert len(official_classes("nih-cxr-lt")) == 20
    assert len(official_classes("mimic-cxr-lt")) == 19
    ct = official_classes("ct-rate")
    assert len(ct) == 18 and ct[0] == "Medical material" and ct[-1] == "Interlobular septal thickening"
    assert list(official_train_counts("nih-cxr-lt")) == list(official_classes("nih-cxr-lt"))
    assert list(official_train_counts("mimic-cxr-lt")) == list(official_classes("mimic-cxr-lt"))


def test_groups_follow_longtailcxr_convention():
    assert [group_of_count(n) for n in (1001, 1000, 100, 99, 7)] == ["head", "medium", "medium", "tail", "tail"]
    space = LabelSpace.official("nih-cxr-lt")
    groups = space.groups(list(official_train_counts("nih-cxr-lt").values()))
    assert groups.count("head") == 7 and groups.count("medium") == 9 and groups.count("tail") == 4


def test_aliases_and_errors():
    space = LabelSpace.official("nih-cxr-lt")
    assert space.index("pleural thickening") == space.index("Pleural_Thickening") == 8
    assert space.null_index == 20 and not space.multi_label
    with pytest.raises(DataError, match="did you mean 'Hernia'"):
        space.index("Hernai")
    cols = space.match_columns(["id", *[n.upper() for n in space.names], "subject_id"], source="x.csv")
    assert cols["No Finding"] == "NO FINDING"
    with pytest.raises(DataError, match=r"x\.csv: missing class column"):
        space.match_columns(["id", "Mass"], source="x.csv")
    vec = LabelSpace.official("ct-rate").encode(["Emphysema", "Lung nodule"])
    assert vec.sum() == 2 and LabelSpace.official("ct-rate").decode(vec) == ["Emphysema", "Lung nodule"]
    assert LabelSpace.from_dict(space.to_dict()) == space
