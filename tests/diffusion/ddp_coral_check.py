"""Run under torchrun with 2 processes: one DDP step of the toy model with cbdm + coral + t2h on a
different batch per rank. The CORAL head (inside the model's forward) and every other weight get the
average of the ranks' gradients: each rank's DDP gradient equals the mean of the two single-process
gradients, and the weights stay identical across ranks after the step."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from medlt.data.labels import LabelSpace
from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.objective import total_loss, training_terms
from medlt.diffusion.regularizers import build_regularizers, model_heads
from medlt.diffusion.schedule import build_scheduler
from medlt.diffusion.unet import build_model
from medlt.recipe.diffusion import RegularizerConfig
from tests.diffusion.toy import toy_recipe

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
recipe = toy_recipe(Path(sys.argv[1]))
regs = build_regularizers([RegularizerConfig(name=n) for n in ("cbdm", "coral", "t2h")])
model = build_model(recipe.model, LabelSpace(("a", "b", "c"), False),
                    heads=model_heads(regs, recipe.model.channels[-1]))
with torch.no_grad():  # same non-trivial weights on both ranks (MONAI zero-initialises the last convs)
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.add_(0.1 * torch.randn(p.shape, generator=g))
sched = build_scheduler(recipe.diffusion)
bank = LabelBank([12, 8, 4], False)
data = torch.Generator().manual_seed(2)
x0 = [torch.randn(4, 1, 8, 8, generator=data) for _ in range(2)]
y = [torch.tensor([0, 0, 1, 2]), torch.tensor([1, 1, 0, 2])]


def grads(m, r):
    m.zero_grad(set_to_none=True)
    st = training_terms(m, sched, regs, x0[r], y[r], bank=bank, label_drop_prob=0.25,
                        generator=torch.Generator().manual_seed(10 + r))
    total_loss(st).backward()
    return {k: p.grad.detach().clone() for k, p in (m.module if hasattr(m, "module") else m).named_parameters()}


single = [grads(model, r) for r in (0, 1)]  # both ranks compute both references, no DDP involved
ddp = DDP(model)
mine = grads(ddp, rank)
for k, v in mine.items():
    want = (single[0][k] + single[1][k]) / 2
    assert torch.allclose(v, want, rtol=1e-4, atol=1e-6), k
head = mine["heads.coral.weight"]
assert head.abs().sum() > 0 and not torch.allclose(single[0]["heads.coral.weight"], single[1]["heads.coral.weight"])
Path(sys.argv[1], f"ok{rank}").write_text("ok")
dist.destroy_process_group()
