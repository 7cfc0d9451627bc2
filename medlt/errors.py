"""Typed errors. Library code raises these; the CLI prints them as one line each (no traceback
unless --debug) and exits non-zero."""

from __future__ import annotations

from dataclasses import dataclass


class MedltError(Exception):
    """Base class: a problem the user can fix (bad recipe, bad data, bad checkpoint)."""

    exit_code = 1


class RecipeError(MedltError):
    """A recipe key is unknown, missing or has a bad value. The message names the key."""

    exit_code = 2


class UsageError(MedltError):
    """A command-line value is out of range or malformed (a bad --steps, an empty list item, a
    repeated path). Exit 2, as click's own usage errors; the message names the option."""

    exit_code = 2


class DataError(MedltError):
    """A data file or manifest row is unusable. The message names the file (and row)."""


class CheckpointError(MedltError):
    """A checkpoint is missing, corrupt or does not fit the recipe."""


class OutputError(MedltError):
    """A file or folder could not be written (read-only, full disk, a file where a folder should
    be). The message names the path and the cause."""


class TrainingDiverged(MedltError):
    """A loss became NaN/inf; the last good checkpoint is left intact."""


@dataclass(frozen=True)
class Problem:
    """One validation finding: which file, which row (1-based data row, None = whole file), what."""

    file: str
    row: int | None
    code: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:row {self.row}"
        return f"{where}: [{self.code}] {self.message}"


class ValidationFailed(DataError):
    """Raised with every problem found, not only the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        head = f"{len(self.problems)} data problem(s) found"
        super().__init__(head + ("; first: " + str(self.problems[0]) if self.problems else ""))
