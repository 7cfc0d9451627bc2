"""`python -m torch.distributed.run --nproc_per_node=2 tests/autoencoder/ddp_train.py OUT`: the tiny
autoencoder (with the PatchGAN term) under DDP on CPU (gloo); rank 0 writes OUT/ok after training."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from medlt.autoencoder.train import train_autoencoder  # noqa: E402
from medlt.utils.distributed import cleanup, init_distributed  # noqa: E402
from tests.autoencoder.tiny import tiny_recipe  # noqa: E402
from tests.diffusion.toy import ToyDataset  # noqa: E402

out = Path(sys.argv[1])
recipe = tiny_recipe(out.parent, extra={"autoencoder": {"adversarial": {"start_step": 1, "channels": 8,
                                                                         "num_layers": 1}}},
                     overrides=["autoencoder.training.max_steps=3", "autoencoder.training.per_rank_batch_size=2"])
info = init_distributed("cpu")
train_autoencoder(recipe, out, dataset=ToyDataset())
if info.is_main:
    (out / "ok").write_text("ok\n")
cleanup()
