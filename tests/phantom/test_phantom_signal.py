"""Findings are real signal: simple features tell the classes apart far above chance."""

import numpy as np
import pandas as pd
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from medlt.data.io import read_cxr
from medlt.data.labels import official_classes
from medlt.phantom.ct import Grid, render_ct, sample_ct_anatomy
from medlt.phantom.cxr import sample_anatomy
from medlt.phantom.cxr_findings import pattern_for_class
from medlt.phantom.cxr_render import render_cxr


def _features(img: np.ndarray) -> np.ndarray:
    s = img.shape[0]
    return img.reshape(16, s // 16, 16, s // 16).mean(axis=(1, 3)).ravel()


@pytest.mark.parametrize("fmt", ["nih-cxr-lt", "mimic-cxr-lt"])
def test_every_class_has_its_own_pattern(fmt):
    patterns = [pattern_for_class(c) for c in official_classes(fmt)]
    assert patterns.count(None) == 1  # only "No Finding" draws nothing
    assert len(set(patterns)) == len(patterns)


@pytest.mark.parametrize("fmt", ["nih-cxr-lt", "mimic-cxr-lt"])
def test_cxr_classes_separable_by_linear_model(fmt):
    """A shrinkage LDA on 16x16 pixels, 10 train / 6 test images per class, each image a different
    patient: balanced accuracy far above chance (1/K = 0.05)."""
    classes = official_classes(fmt)
    X, y, k = [], [], 0
    for c, name in enumerate(classes):
        p = pattern_for_class(name)
        for _ in range(16):
            k += 1
            img = render_cxr([] if p is None else [p], 32, np.random.default_rng(k),
                             sample_anatomy(np.random.default_rng(10_000 + k)))
            X.append(_features(img))
            y.append(c)
    X, y = np.array(X), np.array(y)
    train = np.arange(len(y)) % 16 < 10
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X[train], y[train])
    acc = balanced_accuracy_score(y[~train], lda.predict(X[~train]))
    assert acc > 0.7, acc


def test_written_nih_phantom_nearest_class_mean(nih_dir):
    """On the files written to disk: class means from balanced-val + train, nearest mean on the
    balanced-test images (other patients)."""
    root = nih_dir.out_dir
    classes = list(official_classes("nih-cxr-lt"))
    fit = pd.concat([pd.read_csv(root / f"nih-cxr-lt_single-label_{s}.csv") for s in ("train", "balanced-val")])
    test = pd.read_csv(root / "nih-cxr-lt_single-label_balanced-test.csv")

    def load(df):
        return (np.stack([_features(read_cxr(root / i)) for i in df["id"]]),
                df[classes].to_numpy().argmax(axis=1))

    Xf, yf = load(fit)
    Xt, yt = load(test)
    means = np.stack([Xf[yf == c].mean(axis=0) for c in range(len(classes))])
    pred = np.argmin(((Xt[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert balanced_accuracy_score(yt, pred) > 0.2  # chance 0.05


def test_cxr_orientation_pa_view():
    """Heart on the image's right (patient's left), dark lungs, diaphragm/abdomen at the bottom."""
    imgs = np.stack([render_cxr([], 64, np.random.default_rng(i), sample_anatomy(np.random.default_rng(99 + i)))
                     for i in range(6)]).mean(0)
    lungs = imgs[16:36, 8:24].mean(), imgs[16:36, 40:56].mean()
    heart_right, heart_left = imgs[38:46, 34:44].mean(), imgs[38:46, 20:30].mean()
    assert heart_right > heart_left + 0.1
    assert max(lungs) < imgs[56:62, 10:54].mean() - 0.15  # abdomen below is bright
    assert imgs[:, :3].mean() < 0.1 and imgs[:, -3:].mean() < 0.1  # air outside the body


def test_cardiomegaly_widens_heart_and_multi_label_combines():
    rng = lambda i: np.random.default_rng(i)  # noqa: E731
    anat = sample_anatomy(rng(1))
    normal = render_cxr([], 64, rng(2), anat)
    big = render_cxr(["cardiomegaly"], 64, rng(2), anat)
    both = render_cxr(["cardiomegaly", "nodule"], 64, rng(2), anat)
    row = slice(38, 46)
    assert (big[row, 36:58] > 0.45).sum() > (normal[row, 36:58] > 0.45).sum() + 20
    assert np.abs(both - big).max() > 0.2  # the nodule is added on top


CT_SHAPE = (32, 32, 24)


def _ct_stats(v: np.ndarray, g: Grid) -> dict[str, float]:
    x, y, z = g.x, g.y, g.z
    lung_box = (np.abs(x) > 0.25) & (np.abs(x) < 0.65) & (np.abs(y) < 0.35) & (z > -0.1) & (z < 0.8)
    heart_box = (x > -0.6) & (x < 0.3) & (y > -0.1) & (z > -0.7) & (z < 0.2)
    posterior_base = (np.abs(x) > 0.2) & (np.abs(x) < 0.7) & (y < -0.15) & (y > -0.5) & (z > -0.5) & (z < 0)
    retrocardiac = (np.abs(x + 0.05) < 0.1) & (y > -0.25) & (y < 0) & (z > -0.6) & (z < -0.25)
    return {
        "Medical material": float(v.max()),
        "Cardiomegaly": float(((v > 15) & (v < 80) & heart_box).sum()),
        "Emphysema": float((v[lung_box] < -920).mean()),
        "Pleural effusion": float(((v > -40) & (v < 70) & posterior_base).sum()),
        "Hiatal hernia": float((v[retrocardiac] < -700).sum()),
        "Mosaic attenuation pattern": float(((v > -800) & (v < -700))[lung_box].mean()),
    }


def test_ct_findings_detectable_by_simple_statistics():
    """Six CT-RATE findings each raise one HU statistic: ROC AUC against healthy volumes and volumes
    with other findings > 0.95."""
    g = Grid(CT_SHAPE)
    findings = [None, "Medical material", "Cardiomegaly", "Emphysema", "Pleural effusion", "Hiatal hernia",
                "Mosaic attenuation pattern", "Lung nodule", "Consolidation", "Atelectasis"]
    stats, labels, k = [], [], 0
    for f in findings:
        for _ in range(5):
            k += 1
            v = render_ct([] if f is None else [f], CT_SHAPE, np.random.default_rng(k),
                          sample_ct_anatomy(np.random.default_rng(700 + k)))
            stats.append(_ct_stats(v, g))
            labels.append(f)
    for name in stats[0]:
        auc = roc_auc_score([lab == name for lab in labels], [s[name] for s in stats])
        assert auc > 0.95, (name, auc)


def test_ct_volume_tissues_and_orientation():
    v = render_ct([], (48, 48, 36), np.random.default_rng(0), sample_ct_anatomy(np.random.default_rng(0)))
    g = Grid(v.shape)
    assert np.median(v[0, 0, :]) == pytest.approx(-1000, abs=40)  # air outside
    lung = (np.abs(np.abs(g.x) - 0.42) < 0.1) & (np.abs(g.y) < 0.2) & (np.abs(g.z - 0.2) < 0.2)
    assert -900 < np.median(v[lung]) < -780
    spine = (np.hypot(g.x, g.y + 0.45) < 0.1) & (np.abs(g.z) < 0.5)
    assert np.median(v[spine]) > 200
    # RAS: heart (patient's left) at low x, anterior (high y); spine posterior (low y)
    heart_l = (g.x < -0.05) & (g.x > -0.3) & (g.y > 0.1) & (g.y < 0.35) & (np.abs(g.z + 0.3) < 0.1)
    heart_r = (g.x > 0.35) & (g.x < 0.6) & (g.y > 0.1) & (g.y < 0.35) & (np.abs(g.z + 0.1) < 0.1)
    assert np.median(v[heart_l]) > 0 > np.median(v[heart_r])
