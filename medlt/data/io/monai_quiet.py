"""Silence one known MONAI notice, and nothing else.

Every `monai.transforms.LoadImage(...)`, whatever reader it is given, also builds MONAI's default
readers. One of them, `NvImgCodecPydicomReader` (GPU DICOM decoding), logs "nvImageCodec is not
available; skipping pydicom decoder plugin registration." and warns "NvImgCodecPydicomReader:
nvImageCodec decoder plugin did not register successfully" on every construction when CUDA, CuPy
or nvImageCodec are missing. medlt reads NIfTI through LoadImage and never decodes DICOM through
MONAI (pydicom does that directly), so the notice is noise: it printed once per CT volume.

`quiet_reader_registration()` drops exactly those two messages while a LoadImage is built; other
warnings and other log records, from MONAI or anyone else, pass through unchanged.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

PLUGIN_LOGGER = "monai.data.nvimgcodec_pydicom_plugin"
LOG_NOTICE = "nvImageCodec is not available"
WARNING_NOTICE = "NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register"


class _DropNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LOG_NOTICE)


@contextmanager
def quiet_reader_registration() -> Iterator[None]:
    """Within the block, drop MONAI's "nvImageCodec is not available" log record and warning."""
    logger = logging.getLogger(PLUGIN_LOGGER)
    drop = _DropNotice()
    logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=WARNING_NOTICE, category=UserWarning)
            yield
    finally:
        logger.removeFilter(drop)
