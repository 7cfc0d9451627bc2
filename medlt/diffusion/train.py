"""`medlt train`: class-conditional diffusion training with the recipe's long-tail regularizers.

AdamW + linear warm-up (LambdaLR), grad-norm clipping, EMA, bf16 autocast on CUDA, DDP under torchrun
(rank 0 writes). Every random draw of a step (t, noise, label drop, regularizer labels) comes from
generators seeded by (recipe seed, rank, step), and the data order by (recipe seed, epoch), so
`--resume` continues exactly where the last checkpoint left off.

Run folder:
  RUN/recipe.resolved.yaml, RUN/metrics.csv, RUN/checkpoints/last.pt, RUN/samples/step_XXXXXXX.png
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from medlt.autoencoder.latents import prepare_training_data
from medlt.data.bad_images import write_skipped_images
from medlt.diffusion.data import TrainData
from medlt.diffusion.ema import EMA
from medlt.diffusion.images import class_rows, labelled_grid, save_png
from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.metrics_log import MetricsLog
from medlt.diffusion.objective import total_loss, training_terms
from medlt.diffusion.regularizers import build_regularizers, model_heads
from medlt.diffusion.sampling import sample_loop
from medlt.diffusion.schedule import build_scheduler
from medlt.diffusion.unet import build_model
from medlt.errors import CheckpointError, DataError, MedltError, RecipeError, TrainingDiverged
from medlt.recipe import Recipe, dump_resolved, recipe_from_resolved, recipe_to_dict
from medlt.recipe.checks import check_diffusion_shapes
from medlt.recipe.resume import DIFFUSION_RESUMABLE, append_resume_history, check_resume_recipe
from medlt.utils.checkpoint import load_checkpoint, save_checkpoint
from medlt.utils.device import resolve_device
from medlt.utils.distributed import DistInfo, barrier, init_distributed, is_distributed
from medlt.utils.progress import Progress
from medlt.utils.seeding import derive_seed, rng_state, seed_everything, set_rng_state

CHECKPOINT = Path("checkpoints") / "last.pt"


def use_bf16(recipe: Recipe, device: torch.device) -> bool:
    p = recipe.training.precision
    return p == "bf16" or (p == "auto" and device.type == "cuda")


def warmup_factor(warmup_steps: int):
    """LambdaLR factor: linear warm-up from 1/warmup to 1 over `warmup_steps`, then constant."""
    def f(step: int) -> float:
        return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)
    return f


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _check_resume(state: dict, recipe: Recipe, path: Path) -> dict:
    """The changed resumable keys (key -> (old, new)); RecipeError listing any other difference."""
    old = state.get("recipe")
    if not isinstance(old, dict):
        raise CheckpointError(f"{path}: not a medlt diffusion checkpoint (no recipe)")
    try:  # fill in keys added to the schema since the checkpoint was written
        old = recipe_to_dict(recipe_from_resolved(old))
    except MedltError:
        pass
    return check_resume_recipe(old, recipe_to_dict(recipe), allowed=DIFFUSION_RESUMABLE, what="--resume",
                               source=str(path))


def save_sample_grid(ema_model, scheduler, recipe: Recipe, label_space, path: Path, step: int,
                     latent=None) -> Path:
    """Rows = classes (labelled), columns = `training.sample_grid_per_class` samples (EMA weights)."""
    names, labels = class_rows(label_space)
    n = recipe.training.sample_grid_per_class
    labels = labels.repeat_interleave(n, dim=0)
    gens = [torch.Generator().manual_seed(derive_seed(recipe.seed, "grid", i)) for i in range(len(labels))]
    image_shape = latent.latent_shape if latent else (recipe.model.in_channels, *recipe.data.image_size)
    chunks = []
    bs = recipe.sampling.batch_size
    for s in range(0, len(labels), bs):
        chunks.append(sample_loop(ema_model, scheduler, labels[s:s + bs], gens[s:s + bs], image_shape,
                                  guidance_scale=recipe.sampling.guidance_scale,
                                  num_inference_steps=recipe.sampling.num_inference_steps,
                                  sampler=recipe.sampling.sampler,
                                  clip_sample=recipe.diffusion.clip_sample, clamp_output=latent is None).cpu())
    x = torch.cat(chunks)
    grid = labelled_grid(latent.decode(x) if latent else x, names, n)  # latent: decoded images
    return save_png(path, grid, step=step, guidance_scale=recipe.sampling.guidance_scale)


def _tensorboard(path: Path):
    """A SummaryWriter when the `tensorboard` package is installed, else None (metrics.csv always)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


def train(recipe: Recipe, out_dir: str | Path, *, resume: bool = False, data: TrainData | None = None,
          step_hook=None) -> Path:
    """Train; returns the checkpoint path. `data` overrides the recipe's data (tests); `step_hook`
    (tests) may edit the step's terms: hook(step, StepTerms)."""
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    tc = recipe.training
    resolve_device(tc.device, "training.device")  # CUDA asked for but absent: one line, before anything
    info: DistInfo = init_distributed(tc.device)
    device = info.device
    if resume and not ckpt_path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {ckpt_path}")
    if not resume and ckpt_path.is_file():
        raise MedltError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another --out")
    check_diffusion_shapes(recipe)
    state, changed = None, {}
    if resume:  # refuse a changed recipe before any data is read
        state = load_checkpoint(ckpt_path, map_location="cpu")  # RNG states must stay on the CPU
        changed = _check_resume(state, recipe, ckpt_path)
        if int(state.get("step", 0)) > tc.max_steps:
            raise RecipeError(f"recipe key 'training.max_steps': {ckpt_path} is already at step "
                              f"{int(state['step'])} (got max_steps={tc.max_steps}); resume with a larger value")
    seed_everything(derive_seed(recipe.seed, "train", info.rank) % (2**63))
    # recipe problems first (before any data is read)
    regs = build_regularizers(recipe.regularizers, fine_tuning=tc.init_checkpoint is not None)

    # latent diffusion (model.latent): the training set as cached autoencoder latents
    data, latent = prepare_training_data(recipe, data, device, resume_state=state)
    ls = data.label_space
    bank = LabelBank(data.class_counts, ls.multi_label, data.label_vectors)
    model = build_model(recipe.model, ls, heads=model_heads(regs, recipe.model.channels[-1])).to(device)
    if tc.init_checkpoint and not resume:
        init = load_checkpoint(tc.init_checkpoint)
        try:
            model.load_state_dict(init.get("ema", init.get("model")))
        except RuntimeError as e:
            raise CheckpointError(f"{tc.init_checkpoint}: weights do not fit the recipe's model "
                                  f"({str(e).splitlines()[0]})") from None
    ema = EMA(model, tc.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_factor(tc.warmup_steps))
    scheduler = build_scheduler(recipe.diffusion, recipe.model.spatial_dims)

    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        ema.num_updates = int(state["step"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["lr_scheduler"])
        step = int(state["step"])
        set_rng_state(state["rng"])
    last_good = step if resume else None

    ddp_model = model
    if is_distributed():
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    term_names = ["mse"] + [n for r in regs for n in r.term_names()]
    log = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        dump_resolved(recipe, out / "recipe.resolved.yaml")
        if resume:
            append_resume_history(out, position={"step": step}, changed=changed, command="medlt train --resume")
        write_skipped_images(out)  # data.on_bad_image=skip: RUN/skipped_images.csv
        log = MetricsLog(out / "metrics.csv", ["step", "loss", *term_names, "lr", "grad_norm", "images_per_s"],
                         resume_step=step if resume else None)
    bf16 = use_bf16(recipe, device)
    tb = _tensorboard(out / "tensorboard") if info.is_main else None

    def checkpoint() -> None:
        nonlocal last_good
        if info.is_main:
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                "lr_scheduler": sched.state_dict(), "step": step, "rng": rng_state(),
                "recipe": recipe_to_dict(recipe), "label_space": ls.to_dict(),
                "train_class_counts": [int(c) for c in data.class_counts],
                **(latent.checkpoint_entry() if latent else {}),
            })
        last_good = step
        barrier()

    batch = tc.per_rank_batch_size
    first = data.loader(recipe, batch, 0)
    steps_per_epoch = len(first)
    if steps_per_epoch == 0:
        raise DataError(f"the training split ({len(first.dataset)} images per rank) is smaller than "
                        f"training.per_rank_batch_size={batch}")
    bar = Progress(tc.max_steps, desc="train", unit="step", initial=step, disable=not info.is_main)
    window_t, window_images = time.perf_counter(), 0
    model.train()
    try:
        while step < tc.max_steps:
            epoch, skip = divmod(step, steps_per_epoch)
            loader = first if epoch == 0 else data.loader(recipe, batch, epoch)
            for i, b in enumerate(loader):
                if i < skip:
                    continue
                if step >= tc.max_steps:
                    break
                x0 = b["image"].to(device, non_blocking=True).float()
                labels = b["label"].to(device)
                g = torch.Generator().manual_seed(derive_seed(recipe.seed, "step", info.rank, step))
                ng = torch.Generator(device=device).manual_seed(
                    derive_seed(recipe.seed, "noise", info.rank, step))
                st = training_terms(ddp_model, scheduler, regs, x0, labels, bank=bank,
                                    label_drop_prob=recipe.diffusion.label_drop_prob, generator=g,
                                    noise_generator=ng, autocast=bf16)
                if step_hook is not None:
                    step_hook(step, st)
                loss = total_loss(st)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip_norm)
                # DDP averages gradients, so a NaN on any rank makes grad_norm NaN on every rank
                if not (math.isfinite(loss.item()) and math.isfinite(grad_norm.item())):
                    means = ", ".join(f"{k}={v.mean().item():.4g}" for k, v in st.terms.items())
                    kept = (f"last good checkpoint {ckpt_path} (step {last_good}) is left intact"
                            if last_good is not None else "no checkpoint was written yet")
                    raise TrainingDiverged(f"training diverged at step {step + 1}: loss={loss.item():.4g} "
                                           f"grad_norm={grad_norm.item():.4g} ({means}); {kept}")
                opt.step()
                sched.step()
                ema.update(model)
                step += 1
                window_images += x0.shape[0] * info.world_size
                postfix = None
                if step % tc.log_every_steps == 0 or step == tc.max_steps:
                    vals = torch.stack([loss.detach().float()] + [st.terms[k].detach().float().mean()
                                                                  for k in term_names])
                    if is_distributed():
                        torch.distributed.all_reduce(vals)
                        vals /= info.world_size
                    now = time.perf_counter()
                    ips = window_images / max(now - window_t, 1e-9)
                    window_t, window_images = now, 0
                    row = {"step": step, "loss": vals[0].item(), "lr": sched.get_last_lr()[0],
                           "grad_norm": grad_norm.item(), "images_per_s": round(ips, 2)}
                    row.update({k: vals[j + 1].item() for j, k in enumerate(term_names)})
                    if log is not None:
                        log.append(row)
                    if tb is not None:
                        for k in ["loss", *term_names, "lr", "grad_norm", "images_per_s"]:
                            tb.add_scalar(f"train/{k}", row[k], step)
                    postfix = {k: f"{row[k]:.3g}" for k in ["loss", *term_names]} | {"img/s": f"{ips:.1f}"}
                bar.update(1, postfix)
                if step % tc.checkpoint_every_steps == 0 or step == tc.max_steps:
                    checkpoint()
                grid_every = tc.sample_grid_every_steps
                if info.is_main and grid_every and (step % grid_every == 0 or step == tc.max_steps):
                    save_sample_grid(ema.model, scheduler, recipe, ls,
                                     out / "samples" / f"step_{step:07d}.png", step, latent)
    finally:
        bar.close()
        if tb is not None:
            tb.close()
    return ckpt_path
