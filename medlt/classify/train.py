"""Classifier training: ERM, class-balanced reweighting, decoupled cRT (LongTailCXR baselines),
logit adjustment, and the mixing / finishing options for synthetic training rows.

`fit_classifier(recipe, data, run_dir)` trains on `data.train`, selects the model on the val
role's balanced accuracy (single-label: mean per-class recall; multi-label: mean per-class
(TPR+TNR)/2), and writes atomic, resumable checkpoints:

  RUN/checkpoints/last.pt   everything to resume (model, optimizer, stage, epoch, rng, history)
  RUN/checkpoints/best.pt   the selected model (what `load_classifier` reads)
  RUN/checkpoints/best_main.pt   (cRT only) the best model of the main stage, before re-training
  RUN/recipe.yaml           the resolved recipe;  RUN/history.json  per-epoch losses / val scores

The main stage trains on `data.train` as given: the natural distribution (the CLI never resamples
it, whatever the diffusion's training.class_balanced_q). Losses: `classification_loss` (class-
balanced: torch's weighted-mean cross-entropy). cRT: the main stage trains with plain cross-entropy;
then the best main-stage weights are loaded, the final linear layer is re-initialised and re-trained
alone (backbone frozen, BatchNorm in eval mode) for `crt_epochs` with class-balanced sampling
(`data.balanced_train`, uniform over classes).
Logit adjustment (method logit-adjusted, single-label): the main stage's loss is the cross-entropy of
f(x) + τ·log π, π from the real rows' class counts (`data.real_train_counts`: not copies, not
synthetic rows); the network, its checkpoints and every prediction use f(x) alone.
Synthetic loss weight (classifier.synthetic_loss_weight = s ≠ 1): rows whose source is synthetic
(`data.train_sources`, by item id) weigh s in every stage's weighted-mean loss (medlt.classify.losses).
Finishing (classifier.finish, instead of cRT's stage 2; none for a set without real rows, i.e. CAS's
synthetic-only set, whose logit-adjustment prior is then its own counts): after the main stage, from its best weights
(kept as best_main.pt), a stage "crt-real" (head re-initialised and re-trained alone, class-balanced
sampling, plain cross-entropy) or "finetune-real" (the whole network, plain shuffling, the main
stage's loss: class-balanced weights or logit adjustment from the real counts) trains for
`finish_epochs` on the real rows only (`data.real_train`; medlt.classify.sources says why copies are
left out), whatever the training manifest holds, so every arm of a benchmark is finished alike.
Early stopping (classifier.early_stopping_patience = P): a stage ends once P epochs in a row did not
improve its best val score; best.pt keeps the best epoch. classifier.init_weights initialises the
network from a local file before the first epoch (`load_initial_weights`).
Resuming: re-running with the same RUN continues after the last completed epoch.
Under torchrun each rank trains on its share of every batch (DDP; DATA's loaders shard the
training set), scores the full val set (identical on every rank), and rank 0 writes the files.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medlt.classify.losses import class_balanced_weights, classification_loss, logit_adjustment
from medlt.classify.models import ClassifierNet, build_classifier_net, load_initial_weights
from medlt.cliutils import progress
from medlt.data.bad_images import write_skipped_images
from medlt.data.labels import LabelSpace
from medlt.errors import CheckpointError, DataError, RecipeError, TrainingDiverged
from medlt.metrics.classification import balanced_accuracy, mean_per_class_balanced_accuracy_tpr_tnr
from medlt.recipe import Recipe, dump_resolved, recipe_to_dict
from medlt.recipe.resume import CLASSIFIER_RESUMABLE, append_resume_history, check_rerun
from medlt.utils.atomic import atomic_write_text
from medlt.utils.checkpoint import load_checkpoint, save_checkpoint
from medlt.utils.distributed import barrier, init_distributed, is_distributed
from medlt.utils.seeding import derive_seed, rng_state, seed_everything, set_rng_state


@dataclass
class ClassifierData:
    """What training needs; the CLI builds it from DATA's loaders, tests from in-memory sets."""

    train: Iterable[dict]
    val: Iterable[dict]
    label_space: LabelSpace
    train_counts: list[int]
    spatial_dims: int
    #: factory for a class-balanced training loader (needed by method "crt")
    balanced_train: Callable[[], Iterable[dict]] | None = None
    meta: dict = field(default_factory=dict)
    #: the random augmentation applied to training items (for inspection; None = none)
    train_transform: object | None = None
    #: item id -> manifest source (real, copy, synthetic, ideal) of every training item; None = all real
    train_sources: dict[str, str] | None = None
    #: per class, the real training rows (the logit adjustment's prior); None = train_counts (all real)
    real_train_counts: list[int] | None = None
    #: factory balanced -> loader over the real training rows only (classifier.finish); None = the
    #: training loaders themselves, allowed only when every row is real
    real_train: Callable[[bool], Iterable[dict]] | None = None


#: second stages that re-train the final layer alone (backbone frozen, BatchNorm in eval mode)
HEAD_ONLY_STAGES = ("crt", "crt-real")


def has_real_rows(data: ClassifierData) -> bool:
    """False only for a training set whose recorded sources hold no `real` row (CAS's synthetic-only set)."""
    return data.train_sources is None or any(s == "real" for s in data.train_sources.values())


def second_stage(cfg, data: ClassifierData) -> tuple[str, int] | None:
    """(name, epochs) of the stage after the main one: cRT's, the finishing stage, or None. A
    training set without any real row (CAS) has nothing to finish on: no finishing stage (summary.json
    says so under finish_skipped)."""
    if cfg.method == "crt":
        return "crt", cfg.crt_epochs
    if cfg.finish != "none" and has_real_rows(data):
        return cfg.finish, cfg.finish_epochs
    return None


def prior_counts(data: ClassifierData) -> list[int]:
    """The logit adjustment's class counts: the real rows'; a set without real rows (CAS) its own."""
    if data.real_train_counts is None or not has_real_rows(data):
        return list(data.train_counts)
    return list(data.real_train_counts)


def stage_lr(cfg, name: str) -> float:
    if name == "crt":
        return cfg.crt_lr or cfg.lr
    if name in ("crt-real", "finetune-real"):
        return cfg.finish_lr or cfg.lr
    return cfg.lr


def real_rows(data: ClassifierData, balanced: bool) -> Iterable[dict]:
    """A loader over the real training rows (classifier.finish)."""
    if data.real_train is not None:
        return data.real_train(balanced)
    others = sorted({s for s in (data.train_sources or {}).values() if s != "real"})
    if others:
        raise DataError(f"classifier.finish: the training set has {'/'.join(others)} rows and no loader over its "
                        f"real rows alone")
    if not balanced:
        return data.train
    if data.balanced_train is None:
        raise DataError("classifier.finish 'crt-real' needs a class-balanced training loader")
    return data.balanced_train()


def sample_weights(ids, sources: dict[str, str] | None, weight: float) -> torch.Tensor:
    """(B,) per-item loss weights: `weight` for synthetic items, 1 for every other source."""
    if not sources:
        return torch.ones(len(ids))
    try:
        return torch.tensor([weight if sources[str(i)] == "synthetic" else 1.0 for i in ids])
    except KeyError as e:
        raise DataError(f"training item {e.args[0]!r} has no recorded source") from None


def epochs_without_improvement(history: list[dict], stage: str) -> int:
    """Epochs of `stage` since its best val score (the first epoch reaching the maximum)."""
    scores = [h["val_score"] for h in history if h["stage"] == stage]
    if not scores:
        return 0
    return len(scores) - 1 - int(np.argmax(scores))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict(model: ClassifierNet, loader: Iterable[dict], device: torch.device, *, multi_label: bool,
            with_features: bool = False, show_progress: bool = False, desc: str = "predict"):
    """(targets, probabilities, ids[, features]) over a loader, model in eval mode."""
    model.eval()
    ts, ps, ids, fs = [], [], [], []
    for batch in progress(loader, desc=desc, unit="batch", disable=not show_progress):
        x = batch["image"].to(device, torch.float32)
        feats = model.features(x)
        logits = model.head(feats)
        ps.append((torch.sigmoid(logits) if multi_label else torch.softmax(logits, 1)).float().cpu())
        ts.append(torch.as_tensor(batch["label"]).cpu())
        ids.extend(str(i) for i in batch["id"])
        if with_features:
            fs.append(feats.float().cpu())
    if not ts:
        raise DataError("no images to predict on (empty split)")
    out = (torch.cat(ts), torch.cat(ps), ids)
    return out + (torch.cat(fs),) if with_features else out


def selection_score(label_space: LabelSpace, targets: torch.Tensor, probs: torch.Tensor,
                    threshold: float = 0.5) -> float:
    if label_space.multi_label:
        return mean_per_class_balanced_accuracy_tpr_tnr(targets.numpy(), probs.numpy(), threshold)
    return balanced_accuracy(targets.numpy(), probs.argmax(1).numpy(), label_space.num_classes)


def _checkpoint_common(recipe: Recipe, data: ClassifierData, model: ClassifierNet) -> dict:
    return {
        "recipe": recipe_to_dict(recipe),
        "label_space": data.label_space.to_dict(),
        "train_class_counts": list(map(int, data.train_counts)),
        "spatial_dims": int(data.spatial_dims),
        "feature_dim": int(model.feature_dim),
        "meta": {k: str(v) for k, v in data.meta.items()},
    }


def mixing_summary(cfg, data: ClassifierData, real_counts: list[int]) -> dict:
    """summary.json's record of the mixing and finishing options that are on."""
    out: dict = {}
    sources = list((data.train_sources or {}).values())
    if cfg.finish != "none":
        out["finish_real_items"] = sum(s == "real" for s in sources) if sources else None
        if not has_real_rows(data):
            out["finish_skipped"] = "the training set has no real row (synthetic only, e.g. CAS)"
    if cfg.synthetic_loss_weight != 1.0:
        out["synthetic_loss_weight"] = cfg.synthetic_loss_weight
        out["synthetic_items_weighted"] = sum(s == "synthetic" for s in sources)
    if cfg.method == "logit-adjusted":
        out["logit_adjustment"] = {"tau": cfg.logit_adjustment_tau, "prior_counts": list(map(int, real_counts)),
                                   "prior_from": "real rows" if has_real_rows(data) else "all rows (none is real)"}
    return out


def fit_classifier(recipe: Recipe, data: ClassifierData, run_dir: str | Path, *,
                   show_progress: bool = True) -> dict:
    """Train (or resume) a classifier in run_dir; returns the summary written to RUN/summary.json."""
    cfg = recipe.classifier
    run = Path(run_dir)
    if cfg.method == "logit-adjusted" and data.label_space.multi_label:
        raise RecipeError("recipe key 'classifier.method': 'logit-adjusted' is defined for single-label data only "
                          "(a softmax over classes); this data is multi-label")
    real_counts = prior_counts(data)
    offsets = None
    if cfg.method == "logit-adjusted":
        try:
            offsets = logit_adjustment(real_counts, cfg.logit_adjustment_tau, data.label_space.names)
        except ValueError as e:
            raise DataError(f"classifier.method 'logit-adjusted': {e}") from None
    ckdir = run / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    rerun = check_rerun(ckdir / "last.pt", recipe_to_dict(recipe), allowed=CLASSIFIER_RESUMABLE,
                        what=f"medlt classify (re-run in {run})")
    dump_resolved(recipe, run / "recipe.yaml")
    if rerun is not None:
        append_resume_history(run, position={"stage": rerun[0].get("stage"), "epoch": rerun[0].get("epoch")},
                              changed=rerun[1], command="medlt classify")
    write_skipped_images(run)  # data.on_bad_image=skip: RUN/skipped_images.csv
    if cfg.method == "crt" and data.balanced_train is None:
        raise DataError("classifier.method 'crt' needs a class-balanced training loader")
    info = init_distributed(cfg.device)  # torchrun: DDP (gloo on CPU, NCCL on GPU); else rank 0 of 1
    device = info.device
    main_rank = info.is_main
    show_progress = show_progress and main_rank
    ls = data.label_space
    seed_everything(derive_seed(recipe.seed, "classifier"))
    model = build_classifier_net(cfg, data.spatial_dims, ls.num_classes).to(device)
    weights = (class_balanced_weights(data.train_counts, cfg.class_balanced_beta).to(device)
               if cfg.method == "class-balanced" else None)
    offsets = offsets.to(device) if offsets is not None else None
    second = second_stage(cfg, data)
    if cfg.finish != "none" and second is None and main_rank:
        print(f"classifier.finish '{cfg.finish}' skipped: the training set has no real row (source real)",
              file=sys.stderr)

    def stage_loss_terms(name: str):
        """(class weights, logit offsets) of a stage's loss: the main stage's method; cRT's and
        crt-real's plain cross-entropy (their sampling balances); finetune-real the main stage's loss
        with class-balanced weights from the real counts (the rows it trains on)."""
        if name == "main":
            return weights, offsets
        if name == "finetune-real":
            cb = (class_balanced_weights(real_counts, cfg.class_balanced_beta).to(device)
                  if cfg.method == "class-balanced" else None)
            return cb, offsets
        return None, None

    stage, epoch, best, history = "main", 0, -1.0, []
    last = ckdir / "last.pt"
    state = None
    init_info: dict = {}
    if not last.exists() and cfg.init_weights is not None:
        init_info = load_initial_weights(model, cfg.init_weights)
    if last.exists():
        state = load_checkpoint(last)
        if state.get("label_space") != ls.to_dict():
            raise CheckpointError(f"{last}: label space differs from this recipe's; use a new --out")
        stage, epoch, best, history = state["stage"], int(state["epoch"]), float(state["best_score"]), \
            list(state["history"])
        if stage == "done":
            return json.loads((run / "summary.json").read_text())
        if stage not in ("main", *(second[:1] if second else ())):
            raise CheckpointError(f"{last}: stopped in stage '{stage}', which this recipe does not have; use a new --out")

    def make_optimizer(params, lr):
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)

    def stage_optimizer(name: str):
        """The stage's optimizer; a head-only stage freezes the backbone first."""
        if name in HEAD_ONLY_STAGES:
            for p in model.backbone.parameters():
                p.requires_grad_(False)
            return make_optimizer(model.head.parameters(), stage_lr(cfg, name))
        return make_optimizer(model.parameters(), stage_lr(cfg, name))

    def enter_second(name: str):
        """From the best main-stage weights (kept as best_main.pt); head-only stages re-initialise the head."""
        best_main = load_checkpoint(ckdir / "best.pt")
        model.load_state_dict(best_main["model"])
        if main_rank:
            save_checkpoint(ckdir / "best_main.pt", best_main)
        if name in HEAD_ONLY_STAGES:
            model.reset_head()
        return stage_optimizer(name)

    opt = stage_optimizer(stage)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])

    common = _checkpoint_common(recipe, data, model)

    def wrap():
        """The module that trains: DDP over the trainable parameters under torchrun."""
        if not is_distributed():
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    train_model = wrap()
    stages = [("main", cfg.epochs)] + ([second] if second else [])
    for name, n_epochs in stages:
        if name == "main" and stage != "main":
            continue
        if name != "main" and stage == "main":
            stage, epoch, best = name, 0, -1.0
            opt = enter_second(name)
            train_model = wrap()
        class_w, offs = stage_loss_terms(name)
        patience = cfg.early_stopping_patience
        while epoch < n_epochs:
            if patience is not None and epochs_without_improvement(history, name) >= patience:
                if show_progress:
                    print(f"{name}: early stop after epoch {epoch} ({patience} epochs without a better val "
                          f"score)", file=sys.stderr)
                break
            loader = {"main": lambda: data.train, "crt": data.balanced_train,
                      "crt-real": lambda: real_rows(data, True), "finetune-real": lambda: real_rows(data, False)}[name]()
            sampler = getattr(loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):  # fresh shuffles / balanced draws every epoch
                sampler.set_epoch(derive_seed(name, epoch) % (2**31))
            model.train()
            if name in HEAD_ONLY_STAGES:
                model.backbone.eval()
            losses = []
            for batch in progress(loader, desc=f"{name} epoch {epoch + 1}/{n_epochs}", unit="batch",
                                  disable=not show_progress):
                x = batch["image"].to(device, torch.float32)
                y = torch.as_tensor(batch["label"]).to(device)
                sw = (sample_weights(batch["id"], data.train_sources, cfg.synthetic_loss_weight).to(device)
                      if cfg.synthetic_loss_weight != 1.0 else None)
                terms = classification_loss(train_model(x), y, multi_label=ls.multi_label, class_weights=class_w,
                                            sample_weights=sw, logit_offsets=offs)
                loss = sum(terms.values())
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"classifier loss is {float(loss)} at {name} epoch {epoch + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            t, p, _ = predict(model, data.val, device, multi_label=ls.multi_label)
            score = selection_score(ls, t, p, cfg.threshold)
            epoch += 1
            history.append({"stage": name, "epoch": epoch, "train_loss": float(np.mean(losses)) if losses
                            else float("nan"), "val_score": score})
            if show_progress:
                print(f"{name} epoch {epoch}/{n_epochs}: train loss {history[-1]['train_loss']:.4f}, "
                      f"val score {score:.4f}{' (best so far)' if score > best else ''}", file=sys.stderr)
            improved = score > best
            best = max(best, score)
            if main_rank:  # every rank scored the same full val set with the same weights
                if improved:
                    save_checkpoint(ckdir / "best.pt", {**common, "model": model.state_dict(), "stage": name,
                                                        "epoch": epoch, "val_score": score})
                save_checkpoint(last, {**common, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                       "stage": name, "epoch": epoch, "best_score": best, "history": history,
                                       "rng": rng_state()})
                atomic_write_text(run / "history.json", json.dumps(history, indent=1))
            barrier()
    done = {n: sum(h["stage"] == n for h in history) for n, _ in stages}
    stopped = {n: done[n] for n, total in stages if done[n] < total}  # stage -> epochs trained
    summary = {"best_val_score": best, "selection_metric": (
        "val mean_per_class_balanced_accuracy_tpr_tnr" if ls.multi_label else "val balanced_accuracy"),
        "method": cfg.method, "architecture": cfg.architecture, "epochs": len(history),
        "early_stopping_patience": cfg.early_stopping_patience, "stopped_early_after_epoch": stopped,
        "finish": cfg.finish, **mixing_summary(cfg, data, real_counts),
        **({"init": init_info} if init_info else {}),
        "history": history, **{k: str(v) for k, v in data.meta.items()}}
    if main_rank:
        atomic_write_text(run / "summary.json", json.dumps(summary, indent=1))
        final = load_checkpoint(last)
        final["stage"] = "done"
        save_checkpoint(last, final)
    barrier()
    return summary
