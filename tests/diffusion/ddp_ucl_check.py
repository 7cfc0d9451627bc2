"""Run under torchrun with 2 processes: each rank's UCL terms (negatives gathered across ranks)
equal the single-process terms on the concatenated batch, values and gradients."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from medlt.diffusion.regularizers import ucl_terms

dist.init_process_group("gloo")
rank = dist.get_rank()
g = torch.Generator().manual_seed(0)
full = torch.randn(6, 4, 2, 2, generator=g, dtype=torch.float64)
t = torch.tensor([10, 200, 999, 500, 0, 700])
ref_f = full.clone().requires_grad_(True)
# manual single-process reference (no gather) on the full batch
z = torch.nn.functional.normalize(ref_f.flatten(1), dim=1)
s = (z @ z.T - 1) / 0.1
s = s.masked_fill(torch.eye(6, dtype=torch.bool), float("-inf"))
ref = t.double() / 1000 * torch.logsumexp(torch.cat([torch.zeros(6, 1, dtype=torch.float64), s], 1), 1)
ref.sum().backward()
mine_f = full[rank * 3:(rank + 1) * 3].clone().requires_grad_(True)
mine = ucl_terms(mine_f, t[rank * 3:(rank + 1) * 3], 1000, 0.1)
assert torch.allclose(mine, ref[rank * 3:(rank + 1) * 3].detach(), rtol=1e-10), (mine, ref)
mine.sum().backward()  # the gather's backward sums every rank's gradient into this rank's part
assert torch.allclose(mine_f.grad, ref_f.grad[rank * 3:(rank + 1) * 3], rtol=1e-8, atol=1e-12)
Path(sys.argv[1], f"ok{rank}").write_text("ok")
dist.destroy_process_group()
