"""Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel
k(x, y) = (xᵀy / D + 1)³, averaged over random subsets (Bińkowski et al. 2018), with a weighted
form of the unbiased estimator (`weighted_mmd2_unbiased`) so that subsets can be stratified by
class weights and small sides bootstrapped. Unbiased, so it is ~0 (and can be negative) for two
samples of one distribution, which matters for tail classes with a handful of real images.

Streaming: `FeatureReservoir` keeps a uniform random sample (reservoir sampling, seeded) of at
most `capacity` vectors, so memory is fixed however many vectors stream through; KID subsets are
drawn from the reservoirs. No N×N matrix beyond subset_size × subset_size.

Multi-label: an image sits in the block of every class it carries, so two class blocks of one side
can hold the same image. Each stored row keeps its image id, and a pair of rows with one id is left
out of every within-side mean (not only within a class): k(x, x) is large, and counting it between
two classes biased the scope KID of two samples of one distribution upward (0.24 instead of ~0 for
N(0, I), D = 64, every image in two classes).
"""

from __future__ import annotations

import torch


class FeatureReservoir:
    """Uniform random sample of at most `capacity` rows of a stream (Vitter's algorithm R), with
    each kept row's image id (`ids`: given to `update`, else the row's position in this stream)."""

    def __init__(self, capacity: int = 2000, seed: int = 0):
        self.capacity = capacity
        self.seen = 0
        self.rows: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None
        self._gen = torch.Generator().manual_seed(seed)

    def update(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        x = torch.as_tensor(x).detach().to(torch.float32).reshape(len(x), -1).cpu()
        ids = (self.seen + torch.arange(x.shape[0])) if ids is None else torch.as_tensor(ids, dtype=torch.int64).cpu()
        if len(ids) != x.shape[0]:
            raise ValueError(f"{x.shape[0]} feature rows but {len(ids)} ids")
        if self.rows is None:
            self.rows = torch.empty(0, x.shape[1])
            self.ids = torch.empty(0, dtype=torch.int64)
        free = self.capacity - self.rows.shape[0]
        if free > 0:
            take = x[:free]
            self.rows = torch.cat([self.rows, take])
            self.ids = torch.cat([self.ids, ids[:free]])
            self.seen += take.shape[0]
            x, ids = x[free:], ids[free:]
        if x.shape[0] == 0:
            return
        # row i of the remainder is stream element number seen+i (0-based): keep w.p. capacity/(seen+i+1)
        idx = self.seen + torch.arange(x.shape[0], dtype=torch.float64)
        j = torch.floor(torch.rand(x.shape[0], generator=self._gen, dtype=torch.float64) * (idx + 1)).long()
        keep = j < self.capacity
        for row, image_id, slot in zip(x[keep], ids[keep].tolist(), j[keep].tolist(), strict=True):
            self.rows[slot] = row
            self.ids[slot] = image_id
        self.seen += x.shape[0]

    def __len__(self) -> int:
        return 0 if self.rows is None else self.rows.shape[0]


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (xᵀy / D + 1)³, the KID kernel (float64)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _block_mean(x, a, y, b, same: bool, ix=None, iy=None) -> torch.Tensor:
    """Weighted mean of k over pairs of rows of x and y, leaving out the pairs of a row with itself
    (U-statistic): same = the blocks are one set of stored rows (the diagonal); with image ids
    ix, iy on both blocks (two class blocks of one side), every pair with one id."""
    k = polynomial_kernel(x, y)
    b = a if same else b
    if ix is not None and iy is not None:
        pair = (ix[:, None] != iy[None, :]).to(k.dtype)
    elif same:
        pair = 1.0 - torch.eye(k.shape[0], dtype=k.dtype)
    else:
        return (a @ k @ b) / (a.sum() * b.sum())
    w = a[:, None] * b[None, :] * pair
    den = w.sum()
    return (w * k).sum() / den if den > 0 else torch.tensor(float("nan"))


def stratified_mmd2_unbiased(real_blocks, fake_blocks) -> float:
    """Unbiased MMD² between two class mixtures with the KID kernel. blocks: [(π_c, rows_c, w_c)]
    or [(π_c, rows_c, w_c, ids_c)], the same class order and weights π on both sides, w_c = per-row
    weights (1, or bootstrap counts), ids_c = image ids (multi-label: one image in several blocks).
    Each side's kernel mean is Σ_cd π_c π_d K̄_cd, where K̄_cd is the weighted mean of k between the
    rows of classes c and d over pairs of *different images* (different stored rows within a class;
    different ids across classes when ids are given); so the estimate is unbiased for the mixture
    Σ_c π_c P_c whatever the rows drawn per class, a row drawn twice by a bootstrap is never paired
    with itself, and neither is an image that carries two classes. Real and synthetic images are
    never the same image, so the cross term keeps every pair."""
    def prep(blocks):
        pi = torch.tensor([float(blk[0]) for blk in blocks], dtype=torch.float64)
        return pi / pi.sum(), [(torch.as_tensor(blk[1], dtype=torch.float64), torch.as_tensor(blk[2], dtype=torch.float64),
                                None if len(blk) < 4 or blk[3] is None else torch.as_tensor(blk[3]))
                               for blk in blocks]

    def side(pi, blocks):
        return sum(pi[c] * pi[d] * _block_mean(*blocks[c][:2], *blocks[d][:2], same=c == d, ix=blocks[c][2],
                                               iy=blocks[d][2])
                   for c in range(len(blocks)) for d in range(len(blocks)))

    pr, br = prep(real_blocks)
    pf, bf = prep(fake_blocks)
    cross = sum(pr[c] * pf[d] * _block_mean(*br[c][:2], *bf[d][:2], same=False)
                for c in range(len(br)) for d in range(len(bf)))
    return float(side(pr, br) + side(pf, bf) - 2 * cross)


def weighted_mmd2_unbiased(x: torch.Tensor, a: torch.Tensor, y: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased MMD² between the weighted samples (x, a) and (y, b) (one class each side): within a
    side, (aᵀKa − Σ a_i² K_ii) / ((Σa)² − Σa_i²); across sides the weighted mean of k. With unit
    weights this is the usual unbiased estimator (any two sample sizes)."""
    return stratified_mmd2_unbiased([(1.0, x, a)], [(1.0, y, b)])


def draw_rows(n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and counts of one KID subset from n stored rows: `size` rows without replacement
    when n > size; otherwise a bootstrap resample of n rows (with replacement), so that subsets of
    a small side differ and their spread reflects that side's sampling variability too."""
    if n > size:
        return torch.randperm(n, generator=gen)[:size], torch.ones(size, dtype=torch.float64)
    idx = torch.randint(0, n, (n,), generator=gen)
    uniq, counts = idx.unique(return_counts=True)
    return uniq, counts.to(torch.float64)


def kid_subset_values(real_parts, fake_parts, *, subset_size: int = 100, num_subsets: int = 50,
                      seed: int = 0) -> torch.Tensor:
    """MMD² of `num_subsets` stratified subsets. real_parts / fake_parts: [(weight π_c, rows_c)] or
    [(π_c, rows_c, ids_c)] (image ids: an image in several classes is never paired with itself);
    each subset takes max(2, round(π_c · subset_size)) rows of class c per side (`draw_rows`) and
    the classes are mixed by π (`stratified_mmd2_unbiased`)."""
    gen = torch.Generator().manual_seed(seed)
    tot_r = sum(p[0] for p in real_parts)
    tot_f = sum(p[0] for p in fake_parts)

    def one(parts, tot):
        blocks = []
        for w, rows, *ids in parts:
            idx, cnt = draw_rows(rows.shape[0], max(2, round(w / tot * subset_size)), gen)
            blocks.append((w, rows[idx], cnt, ids[0][idx] if ids and ids[0] is not None else None))
        return blocks

    vals = [stratified_mmd2_unbiased(one(real_parts, tot_r), one(fake_parts, tot_f)) for _ in range(num_subsets)]
    return torch.tensor(vals, dtype=torch.float64)


def summarize_kid(vals: torch.Tensor) -> dict:
    """kid_mean, kid_std (over subsets) and kid_subset_interval95 (2.5th-97.5th percentile of
    the subset values: the spread of one subset's KID, wider than the mean's uncertainty)."""
    vals = vals[~torch.isnan(vals)]
    if vals.numel() == 0:
        return {"kid_mean": float("nan"), "kid_std": float("nan"), "kid_subset_interval95": None}
    std = float(vals.std()) if vals.numel() > 1 else float("nan")
    lo, hi = torch.quantile(vals, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {"kid_mean": float(vals.mean()), "kid_std": std, "kid_subset_interval95": [lo, hi]}


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, *, subset_size: int = 100,
                              num_subsets: int = 50, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of unbiased MMD² over `num_subsets` random subsets (`draw_rows` on each side:
    subset_size rows without replacement, or a bootstrap resample of a side with at most
    subset_size rows). NaN when either side has fewer than 2 vectors."""
    real = torch.as_tensor(real, dtype=torch.float64)
    fake = torch.as_tensor(fake, dtype=torch.float64)
    if real.shape[0] < 2 or fake.shape[0] < 2:
        return float("nan"), float("nan")
    s = summarize_kid(kid_subset_values([(1.0, real)], [(1.0, fake)], subset_size=subset_size,
                                        num_subsets=num_subsets, seed=seed))
    return s["kid_mean"], s["kid_std"]
