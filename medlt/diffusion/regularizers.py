"""Long-tail regularizers (docs/methods.md): pure per-sample formulas and the registered components.

Pure functions: each returns a (B,) tensor, w_t = t/T times the mean over that sample's elements of
the term, with exactly the stop-gradients of docs/methods.md. The batch reduction (mean over B) belongs to
the training loop.

Components (`cbdm`, `overlap`, `ccua`, `coral`, `t2h`) are built from the recipe's `regularizers:`
list. Each one
1. may add named heads to the model (`heads`: CORAL's projection), built with it, so they are in the
   optimizer, the EMA and the checkpoints,
2. asks for extra network passes on the same x_t, t (`extra_passes`: name -> labels/uncond), which
   the objective runs in ONE batched forward together with the main pass, and may ask for the main
   pass's head projections (`main_projection`),
3. may replace the training target (`adjust_target`: T2H), and
4. turns the outputs into named per-sample terms with their weights (`terms`).
The loop never branches on which components are active.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlt.diffusion.coral import coral_terms
from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.rflow import velocity_target
from medlt.diffusion.schedule import time_weight
from medlt.diffusion.t2h import gate, mixing_coefficients, posterior, transferred_noise
from medlt.errors import RecipeError
from medlt.registry import Registry, did_you_mean
from medlt.utils.distributed import all_gather_with_grad


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(dim=1)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16/fp16 network outputs are upcast; float64 stays float64)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


# ---------------------------------------------------------------- pure formulas (docs/methods.md)

def cbdm_terms(eps_cond: torch.Tensor, eps_balanced: torch.Tensor, timesteps: torch.Tensor,
               num_train_timesteps: int, tau: float = 1.0, gamma: float = 0.25) -> torch.Tensor:
    """CBDM: τ·w_t·mean[(h − sg(h′))²] + γ·τ·w_t·mean[(sg(h) − h′)²] per sample,
    h = ε(x_t, y), h′ = ε(x_t, y′)."""
    h, hb = _wide(eps_cond), _wide(eps_balanced)
    w = tau * time_weight(timesteps, num_train_timesteps, h.dtype)
    pull = _per_sample_mean((h - hb.detach()) ** 2)
    push = _per_sample_mean((h.detach() - hb) ** 2)
    return w * pull + gamma * w * push


def alignment_terms(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, timesteps: torch.Tensor,
                    num_train_timesteps: int) -> torch.Tensor:
    """CCUA alignment: w_t·mean[(ε(x_t, y) − ε(x_t, ∅))²] per sample, gradients to both sides."""
    d = _wide(eps_cond) - _wide(eps_uncond)
    return time_weight(timesteps, num_train_timesteps, d.dtype) * _per_sample_mean(d ** 2)


def ucl_terms(features: torch.Tensor, timesteps: torch.Tensor, num_train_timesteps: int,
              temperature: float = 0.1) -> torch.Tensor:
    """CCUA unsupervised contrastive loss on bottleneck features (B, ...):
    ℓ_i = log(1 + Σ_{j≠i} exp((cos(h_i, h_j) − 1)/τ_c)), returned as w_t,i·ℓ_i.

    Under DDP the negatives j run over the features of every rank (gathered with gradients), so the
    loss does not depend on the number of GPUs; every rank must pass the same batch size."""
    z = F.normalize(_wide(features).flatten(1), dim=1)
    everyone = all_gather_with_grad(z)
    b = z.shape[0]
    offset = b * (torch.distributed.get_rank() if everyone.shape[0] != b else 0)
    sims = (z @ everyone.T - 1.0) / temperature  # (B, B_total)
    own = torch.arange(b, device=z.device) + offset
    sims = sims.masked_fill(F.one_hot(own, everyone.shape[0]).bool(), float("-inf"))
    # log(1 + Σ exp(s)) = logsumexp([0, s...])
    loss = torch.logsumexp(torch.cat([torch.zeros(b, 1, device=z.device, dtype=z.dtype), sims], dim=1), dim=1)
    return time_weight(timesteps, num_train_timesteps, loss.dtype) * loss


def overlap_terms(eps_a: torch.Tensor, eps_b: torch.Tensor, timesteps: torch.Tensor,
                  num_train_timesteps: int, margin: float, kind: str = "hinge") -> torch.Tensor:
    """Bounded overlap push (DiffROP-style, medlt's form): d = mean over pixels (ε(x_t,c) − ε(x_t,c′))²;
    hinge: w_t·max(0, m − d); reciprocal: w_t/(1 + d). No stop-gradient."""
    d = _per_sample_mean((_wide(eps_a) - _wide(eps_b)) ** 2)
    w = time_weight(timesteps, num_train_timesteps, d.dtype)
    if kind == "hinge":
        return w * torch.clamp(margin - d, min=0.0)
    if kind == "reciprocal":
        return w / (1.0 + d)
    raise RecipeError(f"overlap kind '{kind}' is unknown; {did_you_mean(kind, ('hinge', 'reciprocal'))}")


# ---------------------------------------------------------------- components

@dataclass
class Pass:
    """One extra network pass: its labels and which rows are unconditional."""

    labels: torch.Tensor
    uncond: torch.Tensor
    features: bool = False
    project: bool = False   # the model's heads applied to this pass's pooled bottleneck


@dataclass
class StepContext:
    """What a component sees: the main pass's inputs plus the step's RNG and label bank."""

    labels: torch.Tensor          # (B,) int64 or (B, K) float
    dropped: torch.Tensor         # (B,) bool: main pass got the null condition
    timesteps: torch.Tensor       # (B,)
    num_train_timesteps: int
    generator: torch.Generator
    bank: LabelBank
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)   # pass name -> eps
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # pass name -> bottleneck
    projections: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # pass -> head -> (B, D)
    # the forward process x_t = a·x0 + b·noise of this step (`mixing` gives a, b)
    x0: torch.Tensor | None = None
    x_t: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    scheduler: Any = None
    flow: bool = False                                               # rectified flow objective
    notes: dict[str, torch.Tensor] = field(default_factory=dict)     # component diagnostics
    _mixing: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def target_of(self, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The objective's target for the pair (x0, noise): ε, or the velocity x0 − ε (rflow)."""
        return velocity_target(x0, noise) if self.flow else noise

    def mixing(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) (B,) float64 of x_t = a·x0 + b·noise, computed on first use (only T2H needs them)."""
        if self._mixing is None:
            self._mixing = mixing_coefficients(self.scheduler, self.timesteps)
        return self._mixing


class Regularizer:
    """Base: `name`, `weight`, extra passes and named weighted per-sample terms."""

    name = "regularizer"
    #: the main pass must return the heads' projections
    main_projection = False
    #: a weight the component must have (None: any weight >= 0)
    fixed_weight: float | None = None

    def __init__(self, weight: float, **options: Any):
        self.weight = float(weight)

    def term_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def heads(self, bottleneck_channels: int) -> dict[str, nn.Module]:
        """Named modules the model carries for this component (trained, EMA'd, checkpointed)."""
        return {}

    def extra_passes(self, ctx: StepContext) -> dict[str, Pass]:
        return {}

    def adjust_target(self, ctx: StepContext, target: torch.Tensor) -> torch.Tensor:
        """The objective's target after this component (default: unchanged)."""
        return target

    def terms(self, ctx: StepContext) -> dict[str, tuple[torch.Tensor, float]]:
        """name -> ((B,) per-sample values, weight)."""
        raise NotImplementedError


REGULARIZERS: Registry[Callable[..., Regularizer]] = Registry("regularizer")


def _check_options(name: str, options: dict, allowed: tuple[str, ...], index: int,
                   ranges: dict[str, tuple[str, float]] | None = None) -> None:
    """Unknown option names, and numeric options outside their range (op ">=" or ">" bound)."""
    for k in options:
        if k not in allowed:
            raise RecipeError(f"recipe key 'regularizers[{index}].options.{k}' is unknown for '{name}'; "
                              f"{did_you_mean(k, allowed)}")
    for k, (op, bound) in (ranges or {}).items():
        if k not in options:
            continue
        v = options[k]
        ok = isinstance(v, int | float) and not isinstance(v, bool) and (v >= bound if op == ">=" else v > bound)
        if not ok:
            raise RecipeError(f"recipe key 'regularizers[{index}].options.{k}': must be a number {op} {bound} "
                              f"(got {v!r})")


@REGULARIZERS.register("cbdm")
class CBDM(Regularizer):
    """Class-balancing diffusion (Qin et al. 2023). options: tau (1.0), gamma (0.25),
    prior: auto | empirical | uniform (auto = empirical from scratch, uniform when fine-tuning)."""

    name = "cbdm"
    options = ("tau", "gamma", "prior")
    ranges = {"tau": (">=", 0.0), "gamma": (">=", 0.0)}

    def __init__(self, weight: float = 1.0, tau: float = 1.0, gamma: float = 0.25, prior: str = "auto",
                 fine_tuning: bool = False):
        super().__init__(weight)
        self.tau, self.gamma = float(tau), float(gamma)
        if prior not in ("auto", "empirical", "uniform"):
            raise RecipeError(f"cbdm option 'prior' must be auto, empirical or uniform, got '{prior}'")
        self.prior = ("uniform" if fine_tuning else "empirical") if prior == "auto" else prior

    def term_names(self):
        return ("cbdm",)

    def extra_passes(self, ctx):
        yb = ctx.bank.balanced(ctx.labels.shape[0], self.prior, ctx.generator, ctx.labels.device)
        return {"cbdm.balanced": Pass(yb, torch.zeros_like(ctx.dropped))}

    def terms(self, ctx):
        v = cbdm_terms(ctx.outputs["main"], ctx.outputs["cbdm.balanced"], ctx.timesteps,
                       ctx.num_train_timesteps, self.tau, self.gamma)
        return {"cbdm": (v * (~ctx.dropped), self.weight)}


@REGULARIZERS.register("overlap")
class Overlap(Regularizer):
    """Bounded push between ε(x_t, c) and ε(x_t, c′), c′ ≠ c. Default weight 0.1; options: margin
    (0.1), kind (hinge | reciprocal). The DiffROP paper's exact form is unpublished; this is medlt's form."""

    name = "overlap"
    options = ("margin", "kind")
    ranges = {"margin": (">", 0.0)}

    def __init__(self, weight: float = 0.1, margin: float = 0.1, kind: str = "hinge", fine_tuning=False):
        super().__init__(weight)
        if kind not in ("hinge", "reciprocal"):
            raise RecipeError(f"overlap option 'kind' is unknown: '{kind}'; "
                              f"{did_you_mean(kind, ('hinge', 'reciprocal'))}")
        self.margin, self.kind = float(margin), kind

    def term_names(self):
        return ("overlap",)

    def extra_passes(self, ctx):
        neg = ctx.bank.negative(ctx.labels, ctx.generator)
        return {"overlap.negative": Pass(neg, torch.zeros_like(ctx.dropped))}

    def terms(self, ctx):
        v = overlap_terms(ctx.outputs["main"], ctx.outputs["overlap.negative"], ctx.timesteps,
                          ctx.num_train_timesteps, self.margin, self.kind)
        # a dropped main pass is unconditional: there is no class c to separate
        return {"overlap": (v * (~ctx.dropped), self.weight)}


@REGULARIZERS.register("ccua")
class CCUA(Regularizer):
    """Contrastive + conditional/unconditional alignment (Chen et al. 2025). options: alpha (UCL
    weight, 1.0), gamma_al (alignment weight, 1.0), temperature (0.1). The component `weight`
    multiplies both."""

    name = "ccua"
    options = ("alpha", "gamma_al", "temperature")
    ranges = {"alpha": (">=", 0.0), "gamma_al": (">=", 0.0), "temperature": (">", 0.0)}

    def __init__(self, weight: float = 1.0, alpha: float = 1.0, gamma_al: float = 1.0,
                 temperature: float = 0.1, fine_tuning=False):
        super().__init__(weight)
        self.alpha, self.gamma_al, self.temperature = float(alpha), float(gamma_al), float(temperature)

    def term_names(self):
        return ("ccua_ucl", "ccua_al")

    def extra_passes(self, ctx):
        return {"ccua.uncond": Pass(ctx.labels, torch.ones_like(ctx.dropped), features=True)}

    def terms(self, ctx):
        ucl = ucl_terms(ctx.features["ccua.uncond"], ctx.timesteps, ctx.num_train_timesteps,
                        self.temperature)
        al = alignment_terms(ctx.outputs["main"], ctx.outputs["ccua.uncond"], ctx.timesteps,
                             ctx.num_train_timesteps) * (~ctx.dropped)
        return {"ccua_ucl": (ucl, self.weight * self.alpha), "ccua_al": (al, self.weight * self.gamma_al)}


@REGULARIZERS.register("coral")
class CORAL(Regularizer):
    """Supervised contrastive loss on the projected bottleneck of the main (conditional) pass
    (Rodriguez et al. 2025; medlt.diffusion.coral). Default weight 0.05 = the official τ_s·λ;
    options: temperature τ_s (0.1), kappa κ (0.3). Head: Linear(C_mid → 128) with bias."""

    name = "coral"
    options = ("temperature", "kappa")
    ranges = {"temperature": (">", 0.0), "kappa": (">", 0.0)}
    main_projection = True
    projection_dim = 128

    def __init__(self, weight: float = 0.05, temperature: float = 0.1, kappa: float = 0.3, fine_tuning=False):
        super().__init__(weight)
        self.temperature, self.kappa = float(temperature), float(kappa)

    def term_names(self):
        return ("coral",)

    def heads(self, bottleneck_channels):
        return {"coral": nn.Linear(bottleneck_channels, self.projection_dim)}

    def terms(self, ctx):
        z = ctx.projections["main"]["coral"]
        v = coral_terms(z, ctx.labels, ctx.timesteps, ctx.num_train_timesteps, temperature=self.temperature,
                        kappa=self.kappa, keep=~ctx.dropped)
        return {"coral": (v, self.weight)}


@REGULARIZERS.register("t2h")
class T2H(Regularizer):
    """T2H / Oriented Calibration (Zhang et al. 2024; medlt.diffusion.t2h): replaces the target by the
    one of a clean image drawn from the batch posterior (head -> tail only). No options; its weight is
    fixed at 1 (it adds no term). Logs `t2h_moved`, the share of rows whose target moved (weight 0)."""

    name = "t2h"
    options = ()
    fixed_weight = 1.0

    def __init__(self, weight: float = 1.0, fine_tuning=False):
        super().__init__(weight)

    def term_names(self):
        return ("t2h_moved",)

    def adjust_target(self, ctx, target):
        a, b = ctx.mixing()
        p = posterior(ctx.x0, ctx.x_t, a, b)
        draw = torch.multinomial(p.float().cpu(), 1, generator=ctx.generator).squeeze(1).to(ctx.x0.device)
        source = gate(draw, ctx.labels, ctx.bank.counts)
        eps = transferred_noise(ctx.x0, ctx.x_t, a, b, source, noise=ctx.noise)
        ctx.notes["t2h_moved"] = (source != torch.arange(len(source), device=source.device)).float()
        return ctx.target_of(ctx.x0.detach()[source].to(eps.dtype), eps)

    def terms(self, ctx):
        return {"t2h_moved": (ctx.notes["t2h_moved"], 0.0)}


def model_heads(regularizers: list[Regularizer], bottleneck_channels: int) -> dict[str, nn.Module]:
    """Every component's model heads, by name (for build_model)."""
    return {k: m for r in regularizers for k, m in r.heads(bottleneck_channels).items()}


def build_regularizers(configs, *, fine_tuning: bool = False) -> list[Regularizer]:
    """Components from the recipe's `regularizers:` list (RecipeError for unknown names/options)."""
    out: list[Regularizer] = []
    seen: set[str] = set()
    for i, cfg in enumerate(configs):
        cls = REGULARIZERS.get(cfg.name, key=f"regularizers[{i}].name")
        if cfg.name in seen:
            raise RecipeError(f"recipe key 'regularizers[{i}].name': '{cfg.name}' is listed twice")
        seen.add(cfg.name)
        _check_options(cfg.name, cfg.options, cls.options, i, getattr(cls, "ranges", None))
        fixed = getattr(cls, "fixed_weight", None)
        if fixed is not None and cfg.weight != fixed:
            raise RecipeError(f"recipe key 'regularizers[{i}].weight': '{cfg.name}' replaces the training "
                              f"target and adds no term; its weight must be {fixed:g} (got {cfg.weight:g})")
        out.append(cls(weight=cfg.weight, fine_tuning=fine_tuning, **cfg.options))
    return out
