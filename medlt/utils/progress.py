"""Progress on stderr for long loops (train, synth, classify, evaluate, data checks).

`MEDLT_PROGRESS` picks the form:
  auto (default)  a tqdm bar when stderr is a terminal, otherwise plain lines
  bar (or 1)      always a tqdm bar
  lines           always plain lines
  off (or 0)      nothing

Plain lines (for logs, batch jobs, `2> train.log`) look like
  train: 120/300 step (40%), 3.1 step/s, elapsed 0:00:39, ETA 0:00:58, loss=0.061
and are written at most once every `MEDLT_PROGRESS_INTERVAL_S` seconds (default 15) across all
loops of the process, plus a closing line for any loop that printed one. Loops shorter than the
interval print nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from medlt.errors import MedltError

T = TypeVar("T")

MODES = {"auto": "auto", "": "auto", "bar": "bar", "1": "bar", "lines": "lines", "off": "off", "0": "off"}
DEFAULT_INTERVAL_S = 15.0
_last_line = [0.0]  # monotonic time of the last plain line of this process (shared throttle)


def progress_mode() -> str:
    """'bar', 'lines' or 'off' from MEDLT_PROGRESS and whether stderr is a terminal."""
    raw = os.environ.get("MEDLT_PROGRESS", "auto").strip().lower()
    if raw not in MODES:
        raise MedltError(f"MEDLT_PROGRESS='{raw}' is not one of: auto, bar (1), lines, off (0)")
    mode = MODES[raw]
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return mode


def interval_s() -> float:
    raw = os.environ.get("MEDLT_PROGRESS_INTERVAL_S")
    if raw is None:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise MedltError(f"MEDLT_PROGRESS_INTERVAL_S='{raw}' must be a number of seconds >= 0")
    return value


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """A progress display for `total` units; `update(n, postfix)` after each unit of work."""

    def __init__(self, total: int | None, *, desc: str = "", unit: str = "it", initial: int = 0,
                 disable: bool = False):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.initial = int(initial)
        self.mode = "off" if disable else progress_mode()
        self.postfix: dict | None = None
        self.printed = False
        self._bar = None
        self._start = time.monotonic()
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
        elif self.mode == "lines":
            self._interval = interval_s()

    def update(self, n: int = 1, postfix: dict | None = None) -> None:
        self.n += n
        if postfix:
            self.postfix = postfix
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(n)
        elif self.mode == "lines":
            now = time.monotonic()
            if now - max(self._start, _last_line[0]) >= self._interval:
                self._line(now)

    def line(self, now: float | None = None, *, final: bool = False) -> str:
        """The plain progress line for the current count."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = (self.n - self.initial) / elapsed
        parts = []
        if self.total:
            parts.append(f"{self.n}/{self.total} {self.unit} ({100.0 * self.n / self.total:.0f}%)")
        else:
            parts.append(f"{self.n} {self.unit}")
        parts.append(f"{rate:.3g} {self.unit}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if final:
            parts.append("done" if self.total is None or self.n >= self.total else "stopped")
        elif self.total and rate > 0:
            parts.append(f"ETA {_clock((self.total - self.n) / rate)}")
        text = f"{self.desc}: " + ", ".join(parts) if self.desc else ", ".join(parts)
        if self.postfix:
            text += ", " + " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return text

    def _line(self, now: float, *, final: bool = False) -> None:
        print(self.line(now, final=final), file=sys.stderr, flush=True)
        _last_line[0] = now
        self.printed = True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.printed:
            self._line(time.monotonic(), final=True)
            self.mode = "off"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
             disable: bool = False) -> Iterator[T]:
    """Iterate with a Progress display (see the module docstring for MEDLT_PROGRESS)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    p = Progress(total, desc=desc, unit=unit, disable=disable)
    if p.mode == "off":
        yield from iterable
        return
    try:
        for item in iterable:
            yield item
            p.update(1)
    finally:
        p.close()
