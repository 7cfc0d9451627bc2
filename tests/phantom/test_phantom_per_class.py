"""`medlt phantom --per-class N`: a balanced set with exactly N training images per class."""

import json

import pandas as pd
import pytest

from medlt.data.labels import official_classes
from medlt.errors import DataError
from medlt.phantom import write_phantom
from tests.cli_run import run_cli


def test_nih_single_label_exactly_n_per_class(tmp_path, capsys):
    code, out, err = run_cli(["phantom", "-l", "nih-cxr-lt", "-o", tmp_path / "p", "--per-class", 3, "-s", 16,
                              "--seed", 5], capsys)
    assert code == 0, err
    classes = official_classes("nih-cxr-lt")
    train = pd.read_csv(tmp_path / "p" / "nih-cxr-lt_single-label_train.csv")
    assert train[list(classes)].sum(axis=0).tolist() == [3] * len(classes)
    assert (train[list(classes)].sum(axis=1) == 1).all() and len(train) == 3 * len(classes)
    test = pd.read_csv(tmp_path / "p" / "nih-cxr-lt_single-label_test.csv")
    assert test[list(classes)].sum(axis=0).tolist() == [3] * len(classes)  # per_class_test (10) > N: all N
    marker = json.loads((tmp_path / "p" / "medlt_phantom.json").read_text())
    assert marker["parameters"]["per_class"] == 3 and marker["parameters"]["imbalance_ratio"] == 1.0
    assert f"train {3 * len(classes)}" in out


@pytest.mark.parametrize("n", [1, 7])
def test_multi_label_primary_counts(tmp_path, n):
    write_phantom("nih-cxr-lt", tmp_path / "p", per_class=n, image_size=16, multi_label=True, seed=2,
                  per_class_test=2)
    classes = list(official_classes("nih-cxr-lt"))
    train = pd.read_csv(tmp_path / "p" / "miccai2023_nih-cxr-lt_labels_train.csv")
    assert len(train) == n * len(classes)
    pos = train[classes].sum(axis=0)
    assert (pos >= n).all()  # primary finding n times each, extra findings on top
    assert int(pos["No Finding"]) == n  # never an extra finding
    val = pd.read_csv(tmp_path / "p" / "miccai2023_nih-cxr-lt_labels_val.csv")
    assert len(val) == 2 * len(classes)


def test_ct_rate_n_positive_scans_per_class(tmp_path):
    write_phantom("ct-rate", tmp_path / "p", per_class=2, image_size=16, seed=1)
    labels = pd.read_csv(tmp_path / "p" / "multi_abnormality_labels" / "train_predicted_labels.csv")
    scans = labels.assign(scan=labels["VolumeName"].str.rsplit("_", n=1).str[0]).drop_duplicates("scan")
    assert len(scans) == 4
    assert scans[list(official_classes("ct-rate"))].sum(axis=0).tolist() == [2] * 18


def test_per_class_differs_by_seed(tmp_path):
    a = write_phantom("nih-cxr-lt", tmp_path / "a", per_class=1, image_size=16, seed=0, per_class_val=1,
                      per_class_test=1)
    b = write_phantom("nih-cxr-lt", tmp_path / "b", per_class=1, image_size=16, seed=1, per_class_val=1,
                      per_class_test=1)
    name = sorted(f for f in a.files if f.endswith(".png"))[0]
    assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()
    assert b.images_per_split["train"] == 20


def test_per_class_error_paths(tmp_path, capsys):
    with pytest.raises(DataError, match="--per-class and --num-images"):
        write_phantom("nih-cxr-lt", tmp_path / "p", per_class=2, num_images=40)
    with pytest.raises(DataError, match="--per-class must be >= 1"):
        write_phantom("nih-cxr-lt", tmp_path / "p", per_class=0)
    code, _, err = run_cli(["phantom", "-l", "nih-cxr-lt", "-o", tmp_path / "q", "--per-class", 2, "-r", 0.1],
                           capsys)
    assert code != 0 and "drop --imbalance-ratio" in err and "Traceback" not in err
    assert not (tmp_path / "q").exists()


def test_train_labels_render_exactly_the_given_vectors(tmp_path):
    """write_phantom(train_labels=...): the training split is exactly the given vectors, in order."""
    import pandas as pd
    import pytest

    from medlt.errors import DataError
    from medlt.phantom import write_phantom

    k = 20
    vecs = [tuple(int(i in (j, (j + 3) % k)) for i in range(k)) for j in range(5)] + [tuple(int(i == 2) for i in range(k))] * 2
    s = write_phantom("nih-cxr-lt", tmp_path / "n", train_labels=vecs, image_size=16, seed=5, multi_label=True)
    train = pd.read_csv(tmp_path / "n" / "miccai2023_nih-cxr-lt_labels_train.csv")
    assert [tuple(r) for r in train.iloc[:, 1:k + 1].to_numpy()] == vecs and train["id"].is_unique
    assert s.parameters["num_images"] == len(vecs) and len(s.parameters["train_labels_sha256"]) == 64
    with pytest.raises(DataError, match=r"train_labels\[0\]: expected 20 values"):
        write_phantom("nih-cxr-lt", tmp_path / "x", train_labels=[(1, 0)], multi_label=True)
    with pytest.raises(DataError, match="single-label NIH phantom needs one-hot"):
        write_phantom("nih-cxr-lt", tmp_path / "x", train_labels=vecs)
    with pytest.raises(DataError, match="excludes num_images"):
        write_phantom("nih-cxr-lt", tmp_path / "x", train_labels=vecs, num_images=3, multi_label=True)
    with pytest.raises(DataError, match="mimic-cxr-lt phantom cannot"):
        write_phantom("mimic-cxr-lt", tmp_path / "x", train_labels=vecs)
