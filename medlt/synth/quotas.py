"""Per-class quotas: how many synthetic images each class needs, from the training split's counts.

Quota forms (recipe `synth.quota` or `--quota`):
  - ``to_head``       every class up to the largest class's count;
  - ``to_count:N``    every class up to at least N images;
  - ``to_ratio:R``    every class up to at least ceil(R x the largest class's count).
A class that already has its target gets nothing; nothing is ever removed.

Targets are per class. How they become a list of images (single-label: one image per missing
count; multi-label: label vectors chosen greedily) is in `medlt.synth.jobs`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from medlt.errors import MedltError, RecipeError

QUOTA_FORMS = ("to_head", "to_count:N (N a positive integer)", "to_ratio:R (R a positive number)")


@dataclass(frozen=True)
class Quota:
    kind: str  # "to_head" | "to_count" | "to_ratio"
    value: float | None = None

    def __str__(self) -> str:
        if self.kind == "to_head":
            return "to_head"
        if self.kind == "to_count":
            return f"to_count:{int(self.value)}"
        return f"to_ratio:{self.value:g}"


def parse_quota(text: str | Quota, *, where: str = "synth.quota",
                error: type[MedltError] = RecipeError) -> Quota:
    """'to_head' | 'to_count:N' | 'to_ratio:R' -> Quota; anything else (the empty text too) is an
    `error` naming `where` (the recipe key; `medlt synth` passes "--quota" and UsageError)."""
    if isinstance(text, Quota):
        return text
    s = str(text).strip()

    def bad(why: str = "") -> MedltError:
        extra = f" ({why})" if why else ""
        return error(f"{where} '{s}' is not a quota{extra}; accepted forms: " + ", ".join(QUOTA_FORMS))

    if s == "to_head":
        return Quota("to_head")
    m = re.fullmatch(r"(to_count|to_ratio)\s*[:=]\s*(\S+)", s)
    if not m:
        raise bad("empty" if not s else "")
    kind, raw = m.groups()
    if kind == "to_count":
        if not re.fullmatch(r"\d+", raw) or int(raw) <= 0:
            raise bad("N must be a positive integer")
        return Quota("to_count", int(raw))
    try:
        r = float(raw)
    except ValueError:
        raise bad("R must be a number") from None
    if not math.isfinite(r) or r <= 0:
        raise bad("R must be a positive number")
    return Quota("to_ratio", r)


def class_targets(real_counts: Sequence[int], quota: str | Quota) -> list[int]:
    """Target count per class (never below the real count)."""
    q = parse_quota(quota)
    counts = [int(c) for c in real_counts]
    if not counts:
        raise RecipeError("cannot plan a synthetic set for a label space without classes")
    head = max(counts)
    if q.kind == "to_head":
        level = head
    elif q.kind == "to_count":
        level = int(q.value)
    else:
        # tiny epsilon so that e.g. 0.1 * 70 = 7.000000000000001 does not round up to 8
        level = math.ceil(q.value * head - 1e-9)
    return [max(c, level) for c in counts]


def images_to_generate(real_counts: Sequence[int], quota: str | Quota) -> list[int]:
    """Single-label: images to generate per class = target - real."""
    return [t - int(c) for t, c in zip(class_targets(real_counts, quota), real_counts, strict=True)]
