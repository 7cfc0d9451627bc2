"""A tiny phantom and a tiny bench recipe shared by the bench tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlt.phantom import write_phantom

TINY_RECIPE = """\
name: bench-test
seed: 0
data:
  format: nih-cxr-lt
  root: {root}
  labels: {root}
  image_size: [16, 16]
  group_thresholds: [3, 6]
model:
  spatial_dims: 2
  channels: [8, 16, 16]
  attention_levels: [false, false, false]
  num_res_blocks: 1
  num_head_channels: 8
  norm_num_groups: 8
diffusion:
  num_train_timesteps: 100
  label_drop_prob: 0.1
regularizers: []
training:
  max_steps: 3
  per_rank_batch_size: 8
  lr: 0.002
  warmup_steps: 1
  checkpoint_every_steps: 2
  sample_grid_every_steps: 0
  log_every_steps: 1
  device: cpu
sampling:
  num_inference_steps: 2
  guidance_scale: 1.5
  batch_size: 64
classifier:
  architecture: resnet18
  widen_factor: 0.125
  epochs: 1
  per_rank_batch_size: 32
  lr: 0.005
  device: cpu
  augment_rotation_deg: 0
evaluate:
  bootstrap_resamples: 20
  kid_subset_size: 2
  kid_num_subsets: 2
  min_real_per_class: 2
  min_synthetic_per_class: 2
  fid_bootstrap_replicates: 0
  ms_ssim_max_pairs: 3
  grid_images_per_class: 1
  memorization_pairs_saved: 1
synth:
  quota: to_count:4
  batch_size: 64
"""


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench_phantom") / "p"
    write_phantom("nih-cxr-lt", out, num_images=60, image_size=16, imbalance_ratio=0.05, seed=3, per_class_val=1,
                  per_class_test=2)
    return out


@pytest.fixture(scope="session")
def tiny_recipe(tiny_phantom, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("bench_recipe") / "tiny.yaml"
    p.write_text(TINY_RECIPE.format(root=tiny_phantom))
    return p


@pytest.fixture(scope="session")
def tiny_ml_recipe(tmp_path_factory) -> Path:
    """The tiny bench recipe on a multi-label NIH phantom (miccai2023 CSVs: train/val/test)."""
    out = tmp_path_factory.mktemp("bench_ml_phantom") / "p"
    write_phantom("nih-cxr-lt", out, num_images=120, image_size=16, imbalance_ratio=0.05, seed=3, multi_label=True)
    p = tmp_path_factory.mktemp("bench_ml_recipe") / "tiny_ml.yaml"
    text = TINY_RECIPE.format(root=out).replace(
        "  image_size: [16, 16]\n",
        "  image_size: [16, 16]\n  multi_label: true\n  splits: {train: train, val: val, test: test, test_longtail: null}\n")
    p.write_text(text.replace("quota: to_count:4", "quota: to_count:12"))
    return p


@pytest.fixture(scope="session")
def tiny_ct_recipe(tmp_path_factory) -> Path:
    """The CT-RATE phantom recipe on a 12-scan CT-RATE phantom (16 px)."""
    out = tmp_path_factory.mktemp("bench_ct_phantom") / "p"
    write_phantom("ct-rate", out, num_images=12, image_size=16, seed=3)
    src = Path(__file__).resolve().parents[2] / "recipes" / "phantom" / "ct_rate.yaml"
    p = tmp_path_factory.mktemp("bench_ct_recipe") / "ct.yaml"
    p.write_text(src.read_text().replace("../../phantoms/ct-rate", str(out)))
    return p
