"""`data:` section: where the images and labels are and how they are preprocessed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from medlt.recipe.base import Count, KeyProblem, NonNegativeInt, PositiveFloat, Section


class CTConfig(Section):
    """CT-RATE preprocessing (docs/datasets.md). HU and spacing come from the metadata CSV."""

    #: voxel spacing after resampling (x, y, z), each > 0
    spacing_mm: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = (0.75, 0.75, 1.5)
    #: (low, high) HU clip, low < high
    hu_window: tuple[float, float] = (-1000.0, 1000.0)
    #: HU are divided by this (> 0)
    hu_scale: PositiveFloat = 1000.0
    #: field of view kept after resampling, in voxels at `spacing_mm` (centre crop / pad with the
    #: lowest value); the result is then resized to `data.image_size`. CT-RATE reference: 480x480x240.
    #: None: resize the whole resampled volume. Each >= 1; it needs no divisibility (the network
    #: sees `data.image_size`).
    crop_size: tuple[Count, Count, Count] | None = (480, 480, 240)
    #: "3d" yields volumes; "2d-axial" yields axial slices of the preprocessed volume
    mode: Literal["3d", "2d-axial"] = "3d"

    @model_validator(mode="after")
    def _window_order(self):
        lo, hi = self.hu_window
        if not lo < hi:
            raise KeyProblem("hu_window", f"must be (low, high) with low < high (got {list(self.hu_window)})")
        return self


class SplitRoles(Section):
    """Which official split plays which role."""

    train: str = Field("train", min_length=1)
    #: null: the data has no val (test) role; verbs that need it (classify: val) say so
    val: str | None = Field("balanced-val", min_length=1)
    test: str | None = Field("balanced-test", min_length=1)
    test_longtail: str | None = Field("test", min_length=1)


class DataConfig(Section):
    format: Literal["nih-cxr-lt", "mimic-cxr-lt", "ct-rate", "manifest"]
    #: folder the image paths are relative to
    root: Path
    #: folder holding the label CSVs (format `manifest`: the manifest CSV file itself, default
    #: root/manifest.csv); default: root
    labels: Path | None = None
    #: format `manifest` only: its class list, as an official format name ("nih-cxr-lt", ...) or an
    #: explicit list of class column names in order. Official formats use data_manifests/.
    classes: str | list[str] | None = Field(None, min_length=1)
    #: multi-label variant (NIH `miccai2023_*` CSVs); CT-RATE is always multi-label
    multi_label: bool = False
    #: MIMIC-CXR-LT image files: the DICOM or the JPG release
    extension: Literal["dcm", "jpg"] = "jpg"
    #: keep only these view positions (e.g. ["PA", "AP"]) per the release metadata (NIH Data_Entry_2017_v2020.csv,
    #: MIMIC mimic-cxr-2.0.0-metadata.csv, manifest column view_position); None keeps all
    view_positions: list[str] | None = Field(None, min_length=1)
    #: output spatial size after preprocessing: (H, W) for CXR; (X, Y, Z) voxels for CT (RAS), also
    #: in 2d-axial mode (slices are then (1, Y, X) in radiological display orientation). Each size
    #: >= 1 and divisible by the diffusion UNet's downsampling 2^(len(model.channels) - 1).
    image_size: list[Count] = Field(default_factory=lambda: [256, 256], min_length=2, max_length=3)
    ct: CTConfig = Field(default_factory=CTConfig)
    splits: SplitRoles = Field(default_factory=SplitRoles)
    #: light augmentation for diffusion training (flip off: chest anatomy is lateralised); the
    #: classifier has its own (classifier.augment_rotation_deg / augment_flip)
    augment: bool = False
    #: preprocessed-sample cache for MONAI PersistentDataset; None = no disk cache
    cache_dir: Path | None = None
    #: without cache_dir: keep preprocessed samples in RAM (MONAI CacheDataset)
    cache_memory: bool = False
    #: moved to `training.class_balanced_q` (the diffusion's batch resampling); any value here is
    #: rejected with a message saying so. Not part of the resolved recipe.
    class_balanced_q: None = Field(None, exclude=True)
    #: head/medium/tail thresholds on training counts: tail < low <= medium <= high < head
    #: (0 <= low <= high)
    group_thresholds: tuple[NonNegativeInt, NonNegativeInt] = (100, 1000)
    #: data-loader worker processes (0 = load in the main process)
    num_workers: NonNegativeInt = 0
    #: an unreadable image (truncated file, 4D volume, side of 1, ...) met by train / classify /
    #: evaluate / preview: "error" stops before the run starts with one line naming the file and
    #: row; "skip" decodes every image once first, leaves the bad ones out and lists them in
    #: RUN/skipped_images.csv
    on_bad_image: Literal["error", "skip"] = "error"

    @model_validator(mode="after")
    def _thresholds_order(self):
        low, high = self.group_thresholds
        if low > high:
            raise KeyProblem("group_thresholds", f"must be (low, high) with low <= high (got [{low}, {high}])")
        return self

    @field_validator("class_balanced_q", mode="before")
    @classmethod
    def _class_balanced_q_moved(cls, v):
        if v is not None:
            raise ValueError("data.class_balanced_q moved to training.class_balanced_q (the diffusion's "
                             "class-balanced batch resampling; the classifier always trains on the natural "
                             "distribution, cRT stage 2 class-balanced)")
        return v
