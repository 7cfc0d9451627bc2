"""Chunked nearest-neighbour search in feature space (Euclidean), never more than
chunk × chunk distances in memory.

Kept over torch.cdist + topk (one N × M matrix: unbounded memory) and scikit-learn's
NearestNeighbors (no distance floor: `min_distance` must skip exact copies of a training image
when finding the nearest *other* real image); the distances themselves are torch.cdist's."""

from __future__ import annotations

import torch


def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, *, chunk: int = 1024,
                       exclude_self: bool = False,
                       min_distance: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query row: (distance, index) of the closest reference row.

    exclude_self: queries ARE the reference (same rows, same order); a row never matches itself.
    min_distance: reference rows at distance <= min_distance are ignored (identical copies); a
    query with no other row gets distance inf and index -1.
    """
    q = torch.as_tensor(queries, dtype=torch.float32).reshape(len(queries), -1)
    r = torch.as_tensor(reference, dtype=torch.float32).reshape(len(reference), -1)
    if exclude_self and q.shape[0] != r.shape[0]:
        raise ValueError("exclude_self needs queries == reference")
    if r.shape[0] == 0 or (exclude_self and r.shape[0] < 2):
        raise ValueError("not enough reference vectors for a nearest-neighbour search")
    best_d = torch.full((q.shape[0],), float("inf"))
    best_i = torch.full((q.shape[0],), -1, dtype=torch.long)
    for qs in range(0, q.shape[0], chunk):
        qc = q[qs:qs + chunk]
        for rs in range(0, r.shape[0], chunk):
            d = torch.cdist(qc.double(), r[rs:rs + chunk].double()).float()
            if exclude_self:
                qi = torch.arange(qs, qs + qc.shape[0]).unsqueeze(1)
                ri = torch.arange(rs, rs + d.shape[1]).unsqueeze(0)
                d = d.masked_fill(qi == ri, float("inf"))
            if min_distance is not None:
                d = d.masked_fill(d <= min_distance, float("inf"))
            md, mi = d.min(dim=1)
            better = md < best_d[qs:qs + qc.shape[0]]
            best_d[qs:qs + qc.shape[0]] = torch.where(better, md, best_d[qs:qs + qc.shape[0]])
            best_i[qs:qs + qc.shape[0]] = torch.where(better, mi + rs, best_i[qs:qs + qc.shape[0]])
    return best_d, best_i
