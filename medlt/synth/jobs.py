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
    replaces: str | None = None  # filters: the id of the rejected image this one re-draws
    attempt: int = 0  # 0 = planned image, k = its k-th re-draw


def noise_seed(recipe_seed: int, key: str, index: int) -> int:
    return derive_seed(int(recipe_seed), "synth", key, int(index))


def _bits(vec: Sequence[int]) -> str:
    return "".join("1" if int(v) else "0" for v in vec)


def _make_job(ordinal: int, key: str, index: int, driver: int, label: Sequence[int],
              recipe_seed: int, multi_label: bool, bits: str | None = None, *, replaces: str | None = None,
              attempt: int = 0) -> Job:
    label = label if isinstance(label, tuple) else tuple(int(v) for v in label)
    if multi_label:
        bits = bits if bits is not None else _bits(label)
        vec_hex = format(int(bits[::-1] or "0", 2), "x")
        jid = f"synth_c{driver:02d}v{vec_hex}_{index:06d}"
    else:
        jid = f"synth_c{driver:02d}_{index:06d}"
    return Job(ordinal=ordinal, key=key, index=index, driver=driver, label=label,
               seed=noise_seed(recipe_seed, key, index), id=jid, replaces=replaces, attempt=attempt)


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
    positives = [np.flatnonzero(u).tolist() for u in uniq]
    onehots = np.eye(k, dtype=np.int64)
    left = [int(d) for d in deficit]  # python ints: K is small, numpy calls would dominate
    open_ = deficit > 0
    # candidates of a class only change when some class reaches its target (at most K times)
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def candidates(c: int) -> tuple[np.ndarray, np.ndarray]:
        if c not in cache:
            fits = (uniq[:, c] == 1) & np.all((uniq == 0) | open_[None, :], axis=1)
            cand = np.flatnonzero(fits)
            cache[c] = (cand, np.cumsum(freq[cand]))
        return cache[c]

    out: list[tuple[int, np.ndarray]] = []
    classes = range(k)
    while True:
        c = max(classes, key=left.__getitem__)  # most deficient; ties -> lowest index
        if left[c] <= 0:
            break
        cand, cdf = candidates(c)
        if cand.size:  # a real vector, drawn with probability proportional to its frequency
            pick = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            u = int(cand[min(pick, cand.size - 1)])
            v, pos = uniq[u], positives[u]
        else:
            v, pos = onehots[c], [c]
        closed = False
        for j in pos:
            left[j] -= 1
            closed |= left[j] == 0
        out.append((c, v))
        if closed:
            open_ = np.asarray(left) > 0
            cache.clear()
    return out


def multi_label_jobs(names: Sequence[str], train_vectors: np.ndarray, targets: Sequence[int],
                     recipe_seed: int, plan_seed: int | None = None) -> list[Job]:
    """The greedy rule's vectors drawn with `plan_seed` (default: the recipe seed); noise seeds
    always from the recipe seed."""
    seen: Counter[str] = Counter()
    jobs: list[Job] = []
    as_tuple: dict[bytes, tuple[tuple[int, ...], str]] = {}  # vector -> (label tuple, bits)
    for c, v in multi_label_vectors(train_vectors, targets, recipe_seed if plan_seed is None else plan_seed):
        raw = v.tobytes()
        if raw not in as_tuple:
            t = tuple(int(x) for x in v)
            as_tuple[raw] = (t, _bits(t))
        label, bits = as_tuple[raw]
        key = f"{names[c]}|{bits}"
        jobs.append(_make_job(len(jobs), key, seen[key], c, label, recipe_seed, True, bits))
        seen[key] += 1
    return jobs


def replacement_jobs(rejected: Sequence[Job], existing: Sequence[Job], recipe_seed: int,
                     multi_label: bool) -> list[Job]:
    """Filters (quality, near-copies): one new job per rejected one, same key and label, the key's
    next free index (so a fresh seed that is still a pure function of the run), recording which
    image it re-draws and the attempt number."""
    next_index: Counter[str] = Counter()
    for j in existing:
        next_index[j.key] = max(next_index[j.key], j.index + 1)
    out: list[Job] = []
    base = max((j.ordinal for j in existing), default=-1) + 1
    for r in sorted(rejected, key=lambda j: j.ordinal):
        idx = next_index[r.key]
        next_index[r.key] += 1
        out.append(_make_job(base + len(out), r.key, idx, r.driver, r.label, recipe_seed, multi_label,
                             replaces=r.id, attempt=r.attempt + 1))
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
