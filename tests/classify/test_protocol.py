"""The LongTailCXR protocol: weighted-mean class-balanced loss, natural main stage and balanced cRT
stage whatever the diffusion's resampling, early stopping, local initial weights, augmentation."""

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare

sys.path.insert(0, str(Path(__file__).parent))
import fakedata  # noqa: E402

from medlt.classify.losses import class_balanced_weights, classification_loss  # noqa: E402
from medlt.errors import CheckpointError, RecipeError  # noqa: E402
from medlt.recipe import load_recipe  # noqa: E402


def test_class_balanced_loss_is_torch_weighted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 4, generator=g)
    y = torch.tensor([0] * 25 + [1] * 4 + [2] * 2 + [3])
    counts = [5000, 400, 30, 3]
    beta = 0.9999
    w = class_balanced_weights(counts, beta)
    n = torch.tensor(counts, dtype=torch.float64)
    raw = (1 - beta) / (1 - beta ** n)
    assert torch.allclose(w.double(), raw / raw.sum() * 4, rtol=1e-6)  # w_c = (1-β)/(1-β^n_c), Σ w = K
    got = classification_loss(logits, y, multi_label=False, class_weights=w)["ce"]
    assert torch.allclose(got, torch.nn.CrossEntropyLoss(weight=w)(logits, y))
    ell = F.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(got, (w[y] * ell).sum() / w[y].sum())  # weighted mean Σ w_y ℓ / Σ w_y
    assert not torch.allclose(got, (w[y] * ell).mean(), rtol=1e-2)  # not Σ w_y ℓ / B
    t = (torch.rand(32, 4, generator=g) > 0.7).float()
    bce = classification_loss(logits, t, multi_label=True, class_weights=w)["bce"]
    assert torch.allclose(bce, (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * w).mean())


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    return fakedata.make_real(root)


class Recorder:
    """Iterates a loader and records the labels it yields."""

    def __init__(self, loader, seen):
        self.loader, self.seen = loader, seen
        self.sampler = getattr(loader, "sampler", None)

    def __iter__(self):
        for b in self.loader:
            self.seen.extend(int(v) for v in b["label"])
            yield b


def test_main_stage_natural_and_crt_balanced_with_diffusion_resampling_on(fake, tmp_path):
    from medlt.classify.data import classifier_data
    from medlt.classify.train import fit_classifier
    from medlt.data.samplers import ClassBalancedSampler

    r = load_recipe(fake, ["training.class_balanced_q=0.5", "classifier.method=crt", "classifier.epochs=2",
                           "classifier.crt_epochs=3", "classifier.early_stopping_patience=null"])
    data = classifier_data(r)
    assert not isinstance(data.train.sampler, ClassBalancedSampler)
    main_seen, crt_seen = [], []
    data.train = Recorder(data.train, main_seen)
    make_balanced = data.balanced_train
    crt_loaders = []

    def balanced():
        crt_loaders.append(make_balanced())
        return Recorder(crt_loaders[-1], crt_seen)

    data.balanced_train = balanced
    fit_classifier(r, data, tmp_path / "run", show_progress=False)
    # main stage: every training image once per epoch -> exactly the natural class counts
    assert Counter(main_seen) == {c: 2 * n for c, n in enumerate(fakedata.TRAIN_COUNTS)}
    # cRT stage 2: uniform over classes (q = 0)
    s = crt_loaders[0].sampler
    assert isinstance(s, ClassBalancedSampler) and s.q == 0.0
    assert np.allclose(s.probabilities, 1 / 3)
    assert len(crt_seen) == 3 * sum(fakedata.TRAIN_COUNTS)
    many = []
    for e in range(40):
        s.set_epoch(e)
        many.extend(data.train.loader.dataset.labels[s.draw()].tolist())
    obs = np.bincount(many, minlength=3)
    assert chisquare(obs).pvalue > 1e-3
    assert chisquare(obs, np.array(fakedata.TRAIN_COUNTS) / 62 * len(many)).pvalue < 1e-6


def test_data_class_balanced_q_is_a_clear_error(fake):
    with pytest.raises(RecipeError, match="moved to training.class_balanced_q"):
        load_recipe(fake, ["data.class_balanced_q=0.5"])


def test_training_augmentation_rotation_and_optional_flip(fake):
    from monai.transforms import RandFlipd, RandRotated

    from medlt.classify.augment import classifier_augmentation
    from medlt.classify.data import classifier_data

    data = classifier_data(load_recipe(fake))
    kinds = [type(t) for t in data.train_transform.transforms]
    assert RandRotated in kinds and RandFlipd not in kinds  # default: rotation ±15°, no flip
    rot = next(t for t in data.train_transform.transforms if isinstance(t, RandRotated))
    assert rot.rand_rotate.range_x == pytest.approx((-np.radians(15), np.radians(15)))
    ds = data.train.dataset
    a, b = ds[0]["image"], ds[0]["image"]
    assert a.shape == (1, 32, 32) and not torch.equal(a, b)  # re-drawn on every access
    flip = classifier_data(load_recipe(fake, ["classifier.augment_flip=true"])).train_transform
    assert RandFlipd in [type(t) for t in flip.transforms]
    assert classifier_data(load_recipe(fake, ["classifier.augment_rotation_deg=0"])).train_transform is None
    # rotation fills the corners with -1 (black), keeps the centre
    cfg = load_recipe(fake, ["classifier.augment_rotation_deg=30"]).classifier
    tf = classifier_augmentation(cfg, 2, seed=0)
    out = [tf({"image": torch.ones(1, 33, 33)})["image"] for _ in range(5)]
    assert all(o[0, 16, 16] == pytest.approx(1.0) for o in out)
    assert any(o[0, 0, 0] == pytest.approx(-1.0) for o in out)
    assert type(out[0]) is torch.Tensor
    # 3D: in-plane (axial) rotation, flip along X
    cfg3 = load_recipe(fake, ["classifier.augment_flip=true"]).classifier
    v = classifier_augmentation(cfg3, 3, seed=1)({"image": torch.rand(1, 8, 8, 4)})["image"]
    assert v.shape == (1, 8, 8, 4)


def test_early_stopping_after_patience(tiny, tmp_path, monkeypatch):
    import medlt.classify.train as train

    make_data, tiny_recipe = tiny
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.9, 0.9, 0.9])
    monkeypatch.setattr(train, "selection_score", lambda *a, **k: next(scores))
    summary = train.fit_classifier(tiny_recipe(tmp_path, epochs=10, early_stopping_patience=2),
                                   make_data([8, 4]), tmp_path / "es", show_progress=False)
    assert [h["val_score"] for h in summary["history"]] == [0.5, 0.6, 0.55, 0.58]
    assert summary["stopped_early_after_epoch"] == {"main": 4} and summary["best_val_score"] == 0.6
    from medlt.utils.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "es" / "checkpoints" / "best.pt")["epoch"] == 2
    assert train.epochs_without_improvement(summary["history"], "main") == 2


def test_init_weights_load_and_bad_files_error(tiny, tmp_path):
    from medlt.classify.models import build_classifier_net, load_initial_weights
    from medlt.classify.train import fit_classifier

    make_data, tiny_recipe = tiny
    cfg = tiny_recipe(tmp_path).classifier
    src = build_classifier_net(cfg, 2, 3)
    torch.save({"model": src.state_dict()}, tmp_path / "medlt.pt")
    net = build_classifier_net(cfg, 2, 3)
    info = load_initial_weights(net, tmp_path / "medlt.pt")
    assert info["init_head_loaded"] and all(torch.equal(v, net.state_dict()[k]) for k, v in src.state_dict().items())
    # a plain backbone state dict with an RGB first convolution and another head size (ImageNet-style)
    from monai.networks import nets

    rgb = nets.resnet18(spatial_dims=2, n_input_channels=3, num_classes=1000, widen_factor=cfg.widen_factor)
    tv_like = {k: v for k, v in rgb.state_dict().items() if not k.endswith("downsample.0.bias")}  # torchvision keys
    assert len(tv_like) < len(rgb.state_dict())
    torch.save(tv_like, tmp_path / "rgb.pt")
    net = build_classifier_net(cfg, 2, 3)
    info = load_initial_weights(net, tmp_path / "rgb.pt")
    assert info["init_rgb_summed"] == ["conv1.weight"] and not info["init_head_loaded"]
    assert torch.allclose(net.backbone.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(net.backbone.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    assert info["init_zero_conv_bias"] and all(net.backbone.state_dict()[k].abs().sum() == 0
                                               for k in info["init_zero_conv_bias"])
    # through training: the run records it
    summary = fit_classifier(tiny_recipe(tmp_path, epochs=1, init_weights=str(tmp_path / "medlt.pt")),
                             make_data([6, 4, 2]), tmp_path / "run", show_progress=False)
    assert summary["init"]["init_weights"] == str(tmp_path / "medlt.pt")
    # bad files: one-line errors
    wide = build_classifier_net(tiny_recipe(tmp_path, widen_factor=0.25).classifier, 2, 3)
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for bad, msg in (("wide.pt", "keys don't fit"), ("junk.pt", "weights_only"), ("none.pt", "not found")):
        with pytest.raises(CheckpointError, match=msg) as e:
            load_initial_weights(build_classifier_net(cfg, 2, 3), tmp_path / bad)
        assert "\n" not in str(e.value)


def test_init_weights_bad_file_via_cli(fake, tmp_path, capsys):
    from medlt.cli import main

    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(SystemExit) as e:
        main(["classify", str(fake), "--out", str(tmp_path / "c"), "--set", f"classifier.init_weights={tmp_path / 'junk.pt'}"])
    assert e.value.code
    err = capsys.readouterr().err.strip()
    assert "classifier.init_weights" in err and len(err.splitlines()) == 1 and "Traceback" not in err
