"""RUN/metrics.csv: one complete row per logged step; on resume rows after the checkpoint's step
(written by the interrupted run after its last checkpoint) and any partial last line are dropped."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from medlt.utils.atomic import atomic_write_text


class MetricsLog:
    def __init__(self, path: str | Path, columns: list[str], *, resume_step: int | None = None):
        self.path = Path(path)
        self.columns = list(columns)
        header = ",".join(self.columns) + "\n"
        if resume_step is None or not self.path.exists():
            atomic_write_text(self.path, header)
            return
        text = self.path.read_text()
        lines = text.split("\n")
        complete = lines[:-1]  # the piece after the last newline is partial (or empty)
        kept = [header.rstrip("\n")]
        if complete and complete[0].split(",") == self.columns:
            for line in complete[1:]:
                if line and int(line.split(",", 1)[0]) <= resume_step:
                    kept.append(line)
        atomic_write_text(self.path, "\n".join(kept) + "\n")

    def append(self, row: dict) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_fmt(row.get(c, "")) for c in self.columns])
        data = buf.getvalue().encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)  # one write of one whole row: no interleaved partial rows
        finally:
            os.close(fd)


def _fmt(v) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


def read_metrics(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
