"""MONAI dictionary transforms that load CXR images and CT-RATE volumes through medlt.data.io."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform

from medlt.errors import DataError

#: sample-dict fields LoadCTd takes spacing and HU rescaling from (CT-RATE metadata CSV)
CT_FIELDS = ("spacing_x", "spacing_y", "spacing_z", "rescale_slope", "rescale_intercept")


class LoadCXRd(MapTransform):
    """d[key] = path -> MetaTensor (1, H, W) float32 in [0, 1] (read_cxr: PNG/JPG/DICOM, row 0 =
    top). meta["filename_or_obj"] is the path."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        import torch
        from monai.data import MetaTensor

        from medlt.data.io.cxr import read_cxr

        d = dict(data)
        for key in self.key_iterator(d):
            path = d[key]
            arr = read_cxr(path)
            d[key] = MetaTensor(torch.from_numpy(arr)[None],
                                meta={"filename_or_obj": str(path), "spatial_shape": arr.shape})
        return d


class LoadCTd(MapTransform):
    """d[key] = NIfTI path -> MetaTensor (1, X, Y, Z) in HU, RAS, affine carrying the spacing from
    d["spacing_x"], d["spacing_y"], d["spacing_z"] (mm), HU = raw * d["rescale_slope"] +
    d["rescale_intercept"] (the header's spacing and scaling are ignored: CT-RATE's are wrong).
    A missing or non-numeric field raises DataError naming the file."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        from medlt.data.io.nifti import load_ct_hu

        d = dict(data)
        for key in self.key_iterator(d):
            path = d[key]
            missing = [f for f in CT_FIELDS if f not in d or d[f] is None or d[f] == ""]
            if not missing:
                try:
                    import math

                    missing = [f for f in CT_FIELDS
                               if isinstance(d[f], float) and math.isnan(d[f])]
                except TypeError:
                    pass
            if missing:
                raise DataError(f"{path}: CT volume without metadata field(s) {missing} "
                                f"(CT-RATE spacing and HU come from metadata/*_metadata.csv)")
            d[key] = load_ct_hu(path, (d["spacing_x"], d["spacing_y"], d["spacing_z"]),
                                d["rescale_slope"], d["rescale_intercept"])
        return d
