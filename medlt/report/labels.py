"""Run labels of `medlt report`: the shortest path suffix that tells the compared runs apart.

A bench holds many evaluation folders of the same name (real/c0/eval, plain/g0/c0/eval, ...), so
the folder name alone is not a label. Each run is named by its last path parts, one more part at a
time until no two runs share a label: real/c0/eval and plain/g0/c0/eval become "real/c0/eval" and
"g0/c0/eval". A report.json given as a file is named by its folder. The same folder given twice
keeps its full path with " (2)", " (3)" after the repeats.
"""

from __future__ import annotations

from pathlib import Path


def _parts(d: str | Path) -> tuple[str, ...]:
    p = Path(d)
    if p.is_file():
        p = p.parent
    return Path(p.resolve()).parts


def run_labels(dirs: list[str | Path]) -> list[str]:
    """One distinct label per run, in the order of `dirs`."""
    parts = [_parts(d) for d in dirs]
    labels = [""] * len(parts)
    todo = list(range(len(parts)))
    k = 1
    while todo:
        cand = {i: str(Path(*parts[i][-k:])) for i in todo}
        seen: dict[str, int] = {}
        for i in range(len(parts)):
            lab = cand.get(i, labels[i])
            seen[lab] = seen.get(lab, 0) + 1
        rest = []
        for i in todo:
            if seen[cand[i]] == 1 or k >= len(parts[i]):
                labels[i] = cand[i]
            else:
                rest.append(i)
        todo, k = rest, k + 1
    counts: dict[str, int] = {}
    for i, lab in enumerate(labels):  # the same folder twice: number the repeats
        counts[lab] = counts.get(lab, 0) + 1
        if counts[lab] > 1:
            labels[i] = f"{lab} ({counts[lab]})"
    return labels
