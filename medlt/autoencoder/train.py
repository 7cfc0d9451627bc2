"""`medlt train-autoencoder`: MONAI AutoencoderKL for latent diffusion.

Loss of the autoencoder (medlt.autoencoder.losses): L1 + kl_weight·KL, plus, when configured, the
perceptual term (local weights only) and, from `autoencoder.adversarial.start_step` on, the
least-squares PatchGAN term, with the discriminator trained on ½(D(x̂) → fake + D(x) → real).
Adam + linear warm-up, grad-norm clipping, optional EMA, bf16 autocast on CUDA, DDP under torchrun
(rank 0 writes). Every random draw of a step (z = μ + σ·ε) comes from generators seeded by
(recipe seed, rank, step) and the data order by (recipe seed, epoch), so `--resume` continues
exactly. Each checkpoint stores the latent scale factor 1 / std(μ) of training latents
(medlt.autoencoder.scale), computed with the weights latents will use (EMA when enabled).

Run folder: RUN/recipe.resolved.yaml, RUN/metrics.csv, RUN/checkpoints/last.pt,
RUN/reconstructions/step_XXXXXXX.png (originals above, reconstructions below).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from medlt.autoencoder.losses import build_perceptual_loss, kl_per_sample, l1_per_sample
from medlt.autoencoder.model import (
    EncodeDecode,
    autoencoder_image_sizes,
    build_autoencoder,
    build_discriminator,
)
from medlt.autoencoder.scale import encode_means, scale_factor_from_latents
from medlt.diffusion.ema import EMA
from medlt.diffusion.images import contact_sheet, save_png
from medlt.diffusion.metrics_log import MetricsLog
from medlt.diffusion.train import warmup_factor
from medlt.errors import CheckpointError, DataError, MedltError, RecipeError, TrainingDiverged
from medlt.recipe import Recipe, dump_resolved, recipe_from_resolved, recipe_to_dict
from medlt.recipe.autoencoder import require_autoencoder_section
from medlt.recipe.resume import append_resume_history, check_resume_recipe
from medlt.utils.checkpoint import load_checkpoint, save_checkpoint
from medlt.utils.device import resolve_device
from medlt.utils.distributed import barrier, init_distributed, is_distributed
from medlt.utils.progress import Progress
from medlt.utils.seeding import derive_seed, rng_state, seed_everything, set_rng_state

CHECKPOINT = Path("checkpoints") / "last.pt"
KIND = "medlt-autoencoder"

#: `medlt train-autoencoder --resume`: keys that may differ from the checkpoint's recipe (cadence,
#: device, and every section the autoencoder trainer does not read)
AUTOENCODER_RESUMABLE = (
    "name",
    "autoencoder.training.max_steps", "autoencoder.training.checkpoint_every_steps",
    "autoencoder.training.recon_grid_every_steps", "autoencoder.training.recon_grid_images",
    "autoencoder.training.log_every_steps", "autoencoder.training.device", "autoencoder.evaluate.*",
    "autoencoder.decode", "autoencoder.decode_tile", "autoencoder.decode_overlap",
    "data.num_workers", "data.cache_dir", "data.cache_memory", "data.group_thresholds",
    "data.splits.val", "data.splits.test", "data.splits.test_longtail",
    "model.*", "diffusion.*", "regularizers.*", "training.*", "sampling.*", "synth.*", "classifier.*",
    "evaluate.*",
)


def check_autoencoder_shapes(recipe: Recipe, source: str = "<recipe>") -> None:
    """RecipeError unless every image size is divisible by the autoencoder's downsampling and
    autoencoder.in_channels is the images' channels."""
    from medlt.recipe.checks import IMAGE_CHANNELS

    if recipe.autoencoder.in_channels != IMAGE_CHANNELS:
        raise RecipeError(f"{source}: recipe key 'autoencoder.in_channels': is {recipe.autoencoder.in_channels} "
                          f"but the images have {IMAGE_CHANNELS} channel; use {IMAGE_CHANNELS} (the latent "
                          f"channels are autoencoder.latent_channels)")
    sizes = autoencoder_image_sizes(recipe)
    f = recipe.autoencoder.downsampling_factor
    if any(s % f for s in sizes):
        raise RecipeError(f"{source}: recipe key 'data.image_size': every size must be divisible by {f} (the "
                          f"autoencoder halves it len(autoencoder.channels) - 1 = {len(recipe.autoencoder.channels) - 1}"
                          f" times; got {sizes})")


def _loader(recipe: Recipe, dataset, batch: int, epoch: int) -> DataLoader:
    """Shuffled drop_last loader; order a pure function of (recipe.seed, epoch)."""
    seed = derive_seed(recipe.seed, "autoencoder-data", epoch) % (2**31)
    if is_distributed():
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True,
                      num_workers=recipe.data.num_workers)


def _grid_images(dataset, n: int) -> torch.Tensor:
    return torch.stack([dataset[i]["image"].float() for i in range(min(n, len(dataset)))])


@torch.no_grad()
def save_recon_grid(autoencoder, images: torch.Tensor, path: Path, step: int, device) -> Path:
    """Originals (first row) above their reconstructions (decode of μ); 3D: middle slices."""
    was = autoencoder.training
    autoencoder.eval()
    try:
        recon = autoencoder.reconstruct(images.to(device)).float().cpu().clamp(-1, 1)
    finally:
        autoencoder.train(was)
    sheet = contact_sheet(torch.cat([images, recon]), columns=len(images))
    return save_png(path, sheet, step=step, content="autoencoder reconstructions (top: input, bottom: output)")


def _check_resume(state: dict, recipe: Recipe, path: Path) -> dict:
    if state.get("kind") != KIND or not isinstance(state.get("recipe"), dict):
        raise CheckpointError(f"{path}: not a medlt autoencoder checkpoint")
    old = state["recipe"]
    try:
        old = recipe_to_dict(recipe_from_resolved(old))
    except MedltError:
        pass
    return check_resume_recipe(old, recipe_to_dict(recipe), allowed=AUTOENCODER_RESUMABLE, what="--resume",
                               source=str(path))


def train_autoencoder(recipe: Recipe, out_dir: str | Path, *, resume: bool = False,
                      dataset: Dataset | None = None) -> Path:
    """Train; returns the checkpoint path. `dataset` ({"image", "label", "id"} dicts) overrides the
    recipe's training split (tests)."""
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    cfg = recipe.autoencoder
    tc = cfg.training
    require_autoencoder_section(recipe)
    resolve_device(tc.device, "autoencoder.training.device")  # CUDA asked for but absent: one line, before anything
    info = init_distributed(tc.device)
    device = info.device
    if resume and not ckpt_path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {ckpt_path}")
    if not resume and ckpt_path.is_file():
        raise MedltError(f"{ckpt_path} exists: pass --resume to continue that run, or choose another --out")
    check_autoencoder_shapes(recipe)
    sizes = autoencoder_image_sizes(recipe)
    spatial_dims = len(sizes)
    state, changed = None, {}
    if resume:
        state = load_checkpoint(ckpt_path, map_location="cpu")
        changed = _check_resume(state, recipe, ckpt_path)
        if int(state.get("step", 0)) > tc.max_steps:
            raise RecipeError(f"recipe key 'autoencoder.training.max_steps': {ckpt_path} is already at step "
                              f"{int(state['step'])} (got max_steps={tc.max_steps}); resume with a larger value")
    seed_everything(derive_seed(recipe.seed, "autoencoder", info.rank) % (2**63))
    perceptual = build_perceptual_loss(cfg.perceptual, spatial_dims).to(device) if cfg.perceptual else None

    if dataset is None:
        from medlt.data.loaders import build_dataset

        dataset = build_dataset(recipe, "train", augment=bool(recipe.data.augment))
    if len(dataset) < tc.per_rank_batch_size * info.world_size:
        raise DataError(f"the training split ({len(dataset)} images) is smaller than "
                        f"autoencoder.training.per_rank_batch_size={tc.per_rank_batch_size} x {info.world_size} rank(s)")
    grid = _grid_images(dataset, tc.recon_grid_images)

    ae = build_autoencoder(cfg, spatial_dims).to(device)
    ema = EMA(ae, tc.ema_decay) if tc.ema_decay is not None else None
    opt = torch.optim.Adam(ae.parameters(), lr=tc.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_factor(tc.warmup_steps))
    adv = cfg.adversarial
    disc = disc_opt = adv_loss = None
    if adv is not None:
        from monai.losses import PatchAdversarialLoss

        disc = build_discriminator(adv, spatial_dims, cfg.in_channels).to(device)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=adv.lr)
        adv_loss = PatchAdversarialLoss(criterion="least_squares")

    step = 0
    if state is not None:
        ae.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
            ema.num_updates = int(state["step"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["lr_scheduler"])
        if disc is not None:
            disc.load_state_dict(state["discriminator"])
            disc_opt.load_state_dict(state["discriminator_optimizer"])
        step = int(state["step"])
        set_rng_state(state["rng"])
    last_good = step if resume else None

    step_net = EncodeDecode(ae)
    disc_net = disc
    if is_distributed():
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        step_net = DDP(step_net, device_ids=ids)
        if disc is not None:
            disc_net = DDP(torch.nn.SyncBatchNorm.convert_sync_batchnorm(disc) if device.type == "cuda" else disc,
                           device_ids=ids)

    terms = ["l1", "kl", "perceptual", "adv_g", "adv_d"]
    log = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        dump_resolved(recipe, out / "recipe.resolved.yaml")
        if resume:
            append_resume_history(out, position={"step": step}, changed=changed,
                                  command="medlt train-autoencoder --resume")
        log = MetricsLog(out / "metrics.csv", ["step", "loss", *terms, "lr", "grad_norm", "images_per_s"],
                         resume_step=step if resume else None)
    bf16 = use_bf16_ae(tc.precision, device)
    weights_model = ema.model if ema is not None else ae

    def checkpoint() -> None:
        nonlocal last_good
        if info.is_main:
            means = encode_means(weights_model, dataset, batch_size=tc.per_rank_batch_size, device=device,
                                 limit=tc.scale_factor_images)
            s = {
                "kind": KIND, "model": ae.state_dict(),
                "ema": (ema.state_dict() if ema is not None else ae.state_dict()),
                "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(), "step": step,
                "rng": rng_state(), "recipe": recipe_to_dict(recipe),
                "spatial_dims": spatial_dims, "image_size": [int(v) for v in sizes],
                "latent_size": [int(v) // cfg.downsampling_factor for v in sizes],
                "latent_channels": cfg.latent_channels,
                "scale_factor": scale_factor_from_latents(means), "scale_factor_images": int(means.shape[0]),
            }
            if disc is not None:
                s["discriminator"] = disc.state_dict()
                s["discriminator_optimizer"] = disc_opt.state_dict()
            save_checkpoint(ckpt_path, s)
        last_good = step
        barrier()

    batch = tc.per_rank_batch_size
    first = _loader(recipe, dataset, batch, 0)
    steps_per_epoch = len(first)
    bar = Progress(tc.max_steps, desc="train-autoencoder", unit="step", initial=step, disable=not info.is_main)
    window_t, window_images = time.perf_counter(), 0
    ae.train()
    try:
        while step < tc.max_steps:
            epoch, skip = divmod(step, steps_per_epoch)
            loader = first if epoch == 0 else _loader(recipe, dataset, batch, epoch)
            for i, b in enumerate(loader):
                if i < skip:
                    continue
                if step >= tc.max_steps:
                    break
                x = b["image"].to(device, non_blocking=True).float()
                g = torch.Generator(device=device).manual_seed(
                    derive_seed(recipe.seed, "autoencoder-z", info.rank, step))
                use_adv = disc is not None and step >= adv.start_step
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                    recon, mu, sigma = step_net(x, g)
                    vals = {"l1": l1_per_sample(recon, x).mean(), "kl": kl_per_sample(mu, sigma).mean()}
                    loss = vals["l1"] + cfg.kl_weight * vals["kl"]
                    if perceptual is not None:
                        vals["perceptual"] = perceptual(recon.float(), x)
                        loss = loss + cfg.perceptual.weight * vals["perceptual"]
                    if use_adv:
                        logits = disc_net(recon.contiguous().float())[-1]
                        vals["adv_g"] = adv_loss(logits, target_is_real=True, for_discriminator=False)
                        loss = loss + adv.weight * vals["adv_g"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(ae.parameters(), tc.grad_clip_norm)
                if not (math.isfinite(loss.item()) and math.isfinite(grad_norm.item())):
                    kept = (f"last good checkpoint {ckpt_path} (step {last_good}) is left intact"
                            if last_good is not None else "no checkpoint was written yet")
                    raise TrainingDiverged(f"autoencoder training diverged at step {step + 1}: "
                                           f"loss={loss.item():.4g} grad_norm={grad_norm.item():.4g}; {kept}")
                opt.step()
                sched.step()
                if use_adv:
                    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                        fake = disc_net(recon.detach().contiguous().float())[-1]
                        real = disc_net(x.contiguous())[-1]
                        loss_d = 0.5 * (adv_loss(fake, target_is_real=False, for_discriminator=True)
                                        + adv_loss(real, target_is_real=True, for_discriminator=True))
                        loss_d = adv.weight * loss_d
                    disc_opt.zero_grad(set_to_none=True)
                    loss_d.backward()
                    torch.nn.utils.clip_grad_norm_(disc.parameters(), tc.grad_clip_norm)
                    disc_opt.step()
                    vals["adv_d"] = loss_d
                if ema is not None:
                    ema.update(ae)
                step += 1
                window_images += x.shape[0] * info.world_size
                postfix = None
                if step % tc.log_every_steps == 0 or step == tc.max_steps:
                    v = torch.stack([loss.detach().float()] + [vals[k].detach().float() if k in vals
                                                               else torch.zeros((), device=device) for k in terms])
                    if is_distributed():
                        torch.distributed.all_reduce(v)
                        v /= info.world_size
                    now = time.perf_counter()
                    ips = window_images / max(now - window_t, 1e-9)
                    window_t, window_images = now, 0
                    row = {"step": step, "loss": v[0].item(), "lr": sched.get_last_lr()[0],
                           "grad_norm": grad_norm.item(), "images_per_s": round(ips, 2)}
                    row.update({k: (v[j + 1].item() if k in vals else "") for j, k in enumerate(terms)})
                    if log is not None:
                        log.append(row)
                    postfix = {k: f"{row[k]:.3g}" for k in ["loss", "l1", "kl"]} | {"img/s": f"{ips:.1f}"}
                bar.update(1, postfix)
                if step % tc.checkpoint_every_steps == 0 or step == tc.max_steps:
                    checkpoint()
                every = tc.recon_grid_every_steps
                if info.is_main and every and (step % every == 0 or step == tc.max_steps):
                    save_recon_grid(weights_model, grid, out / "reconstructions" / f"step_{step:07d}.png", step,
                                    device)
    finally:
        bar.close()
    return ckpt_path


def use_bf16_ae(precision: str, device: torch.device) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")
