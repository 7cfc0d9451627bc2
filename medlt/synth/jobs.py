"""The job list: one entry per synthetic image, with its label, file id and noise seed.

Everything here is a pure function of (training labels, quota, recipe seed), so every process
(one run, a resumed run, any torchrun rank) computes the same list.

Seeds. Each job has a *key* (single-label: the class name; multi-label: the driving class name and
the label vector's bits) and an *index* within that key (0, 1, 2, ...). Its noise seed is
``derive_seed(recipe_seed, "synth", key, index)``.

Single-label rule: class c gets ``target_c - real_c`` jobs; the list is ordered round-robin over
classes (index 0 of every class, then index 1, ...) so that progress and batches mix classes.

Multi-label rule (greedy, zero over-shoot): deficits d_c = target_c - real_c. Repeat while some
d_c > 0: pick the most deficient class c (ties: lowest index) and a label vector for it: a real
training label vector v that contains c and adds no positive to a class without deficit
(v_j = 1 => d_j >= 1), drawn with probability proportional to how often v occurs in the training
split, from one seeded generator; if no real vector fits, the one-hot vector of c. Then d -= v.
Every step lowers d_c by one and never makes a deficit negative, so the loop ends after at most
sum(d) images and every class ends *exactly* at its target: realistic co-occurrences where they
fit, single-positive vectors where they do not.

Batches are the ordered job list cut into chunks of `batch_size`; under torchrun rank r takes
batches i with i % world_size == r. Batch composition therefore never depends on how the work is
split, and neither do the bytes written.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medlt.utils.seeding import derive_seed


@dataclass(frozen=True)
class Job:
    ordinal: int  # position in the full job list (drives synthetic patient/study ids)
    key: str  # seed key: class name, or "class|bits" for multi-label
    index: int  # index within the key
    driver: int  # class this image was planned for
    label: tuple[int, ...]  # multi-hot (K,) label vector (single-label: one-hot)
    seed: int
    id: str  # file stem / manifest id


def noise_seed(recipe_seed: int, key: str, index: int) -> int:
    return derive_seed(int(recipe_seed), "synth", key, int(index))


def _bits(vec: Sequence[int]) -> str:
    return "".join("1" if int(v) else "0" for v in vec)


def _make_job(ordinal: int, key: str, index: int, driver: int, label: Sequence[int],
              recipe_seed: int, multi_label: bool) -> Job:
    if multi_label:
        vec_hex = format(int(_bits(label)[::-1] or "0", 2), "x")
        jid = f"synth_c{driver:02d}v{vec_hex}_{index:06d}"
    else:
        jid = f"synth_c{driver:02d}_{index:06d}"
    return Job(ordinal=ordinal, key=key, index=index, driver=driver,
               label=tuple(int(v) for v in label), seed=noise_seed(recipe_seed, key, index), id=jid)


def single_label_jobs(names: Sequence[str], to_generate: Sequence[int], recipe_seed: int) -> list[Job]:
    """Round-robin over classes: index 0 of every class, then index 1, ..."""
    k = len(names)
    jobs: list[Job] = []
    for i in range(max(to_generate, default=0)):
        for c in range(k):
            if i < to_generate[c]:
                onehot = [0] * k
                onehot[c] = 1
                jobs.append(_make_job(len(jobs), names[c], i, c, onehot, recipe_seed, False))
    return jobs


def multi_label_vectors(train_vectors: np.ndarray, targets: Sequence[int],
                        recipe_seed: int) -> list[tuple[int, np.ndarray]]:
    """The greedy rule of this module's docstring: [(driving class, label vector), ...]."""
    tv = np.asarray(train_vectors, dtype=np.int64).reshape(-1, len(targets))
    k = len(targets)
    have = tv.sum(axis=0)
    deficit = np.maximum(np.asarray(targets, dtype=np.int64) - have, 0)
    if tv.shape[0]:
        uniq, freq = np.unique(tv, axis=0, return_counts=True)
        keep = uniq.sum(axis=1) > 0
        uniq, freq = uniq[keep], freq[keep]
    else:
        uniq, freq = np.zeros((0, k), np.int64), np.zeros(0, np.int64)
    rng = np.random.default_rng(derive_seed(int(recipe_seed), "synth-plan-multilabel"))
    out: list[tuple[int, np.ndarray]] = []
    while deficit.max(initial=0) > 0:
        c = int(np.argmax(deficit))
        open_ = deficit > 0
        fits = (uniq[:, c] == 1) & np.all((uniq == 0) | open_[None, :], axis=1)
        cand = np.flatnonzero(fits)
        if cand.size:
            p = freq[cand] / freq[cand].sum()
            v = uniq[int(rng.choice(cand, p=p))].copy()
        else:
            v = np.zeros(k, np.int64)
            v[c] = 1
        deficit -= v
        out.append((c, v))
    return out


def multi_label_jobs(names: Sequence[str], train_vectors: np.ndarray, targets: Sequence[int],
                     recipe_seed: int) -> list[Job]:
    seen: Counter[str] = Counter()
    jobs: list[Job] = []
    for c, v in multi_label_vectors(train_vectors, targets, recipe_seed):
        key = f"{names[c]}|{_bits(v)}"
        jobs.append(_make_job(len(jobs), key, seen[key], c, v, recipe_seed, True))
        seen[key] += 1
    return jobs


def replacement_jobs(rejected: Sequence[Job], existing: Sequence[Job], recipe_seed: int,
                     multi_label: bool) -> list[Job]:
    """Quality filter: one new job per rejected one, same key and label, next free index."""
    next_index: Counter[str] = Counter()
    for j in existing:
        next_index[j.key] = max(next_index[j.key], j.index + 1)
    out: list[Job] = []
    base = max((j.ordinal for j in existing), default=-1) + 1
    for r in sorted(rejected, key=lambda j: j.ordinal):
        idx = next_index[r.key]
        next_index[r.key] += 1
        out.append(_make_job(base + len(out), r.key, idx, r.driver, r.label, recipe_seed, multi_label))
    return out


def batches(jobs: Sequence[Job], batch_size: int) -> list[list[Job]]:
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    return [list(jobs[i:i + batch_size]) for i in range(0, len(jobs), batch_size)]


def rank_batches(all_batches: Sequence[list[Job]], rank: int, world_size: int) -> list[list[Job]]:
    """Batches i with i % world_size == rank."""
    return [b for i, b in enumerate(all_batches) if i % world_size == rank]


def jobs_fingerprint(jobs: Sequence[Job]) -> str:
    """sha256 over (id, seed, label) of every job: two plans with the same fingerprint write the
    same files."""
    h = hashlib.sha256()
    for j in jobs:
        h.update(f"{j.id},{j.seed},{_bits(j.label)}\n".encode())
    return h.hexdigest()
