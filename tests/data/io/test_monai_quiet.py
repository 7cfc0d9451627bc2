"""MONAI's GPU-DICOM notice is dropped while medlt loads CT, and nothing else is."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from medlt.data.io.monai_quiet import LOG_NOTICE, PLUGIN_LOGGER, WARNING_NOTICE, quiet_reader_registration
from medlt.data.io.nifti import load_ct_hu, write_nifti


def _emit(message_suffix: str = "") -> None:
    logging.getLogger(PLUGIN_LOGGER).warning(LOG_NOTICE + "; skipping pydicom decoder plugin registration.")
    warnings.warn(WARNING_NOTICE + " successfully. Falling back to default pydicom decoders.", UserWarning,
                  stacklevel=2)


def test_the_notice_is_dropped_inside_and_kept_outside(caplog):
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_reader_registration():
            _emit()
        assert seen == [] and caplog.records == []
        _emit()  # outside the block: untouched
        assert len(seen) == 1 and len(caplog.records) == 1


def test_other_messages_pass_through(caplog):
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_reader_registration():
            logging.getLogger(PLUGIN_LOGGER).warning("CUDA device not found.")
            logging.getLogger("monai.transforms").warning("nvImageCodec is not available elsewhere")
            warnings.warn("some other MONAI warning", UserWarning, stacklevel=1)
    assert [r.getMessage() for r in caplog.records] == ["CUDA device not found.",
                                                        "nvImageCodec is not available elsewhere"]
    assert [str(w.message) for w in seen] == ["some other MONAI warning"]
    assert logging.getLogger(PLUGIN_LOGGER).filters == []  # the filter is removed afterwards


def test_loading_a_ct_volume_prints_no_notice(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "v.nii.gz"
    write_nifti(path, np.full((6, 5, 4), -1000, dtype=np.int16), (1.0, 1.0, 1.0), descrip="test")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        img = load_ct_hu(path, (0.75, 0.75, 1.5), 1.0, 0.0)
    assert float(img.min()) == -1000.0
    assert not [r for r in caplog.records if "nvImageCodec" in r.getMessage()]
    assert not [w for w in seen if "nvImageCodec" in str(w.message)]
    assert "nvImageCodec" not in capfd.readouterr().err
