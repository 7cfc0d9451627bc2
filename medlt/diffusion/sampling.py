"""The short sampling loop (MONAI's DiffusionInferer does not pass class labels): classifier-free
guidance in one batched forward, per-sample noise generators, and four samplers:

- ε-prediction (diffusion.objective epsilon): `ddim` (η = 0), `ddpm` (ancestral) and `dpm++`
  (DPM-Solver++ 2M from diffusers, medlt.diffusion.dpm_solver);
- rectified flow (objective rflow): `rflow`, Euler steps x_t′ = x_t + ((t − t′)/T)·ṽ of the flow ODE on
  MONAI RFlowScheduler's time grid (medlt.diffusion.rflow), ṽ the guided velocity.

The guidance formula is the same for every sampler, on whatever the network predicts (ε or v).

The timestep sequence comes from MONAI's scheduler (`set_timesteps`); the update is written here so
that (a) each sample's noise (initial and per step) comes from its own torch.Generator, and (b) the
previous timestep is the next one in that sequence (correct for any number of steps).

Run-time options (`SamplerOptions`, recipe `sampling.x0_clip`, `dynamic_threshold_quantile`,
`guidance_rescale`, `guidance_interval`; docs/methods.md, "How the deterministic samplers use the clamped x̂₀").
Notation: ᾱ_t the cumulative product, α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), x̂0 = (x_t − σ_t·ε̃)/α_t.

- x0_clip `legacy` (default): x̂0 clamped to [−1, 1], the step keeps the unclamped ε̃:
  x_t′ = α_t′·clamp(x̂0) + σ_t′·ε̃ (DDIM; DPM++ re-forms its state the same way). Whenever the clamp
  acts, this x_t′ is not on any trajectory of the model's ODE.
  `consistent`: ε̂ = (x_t − α_t·clamp(x̂0))/σ_t is re-derived from the clamped x̂0 and the step uses
  it, x_t′ = α_t′·clamp(x̂0) + σ_t′·ε̂ (OpenAI guided-diffusion's DDIM; diffusers'
  use_clipped_model_output). `dynamic`: as consistent with dynamic thresholding (Saharia et al.,
  NeurIPS 2022): per sample s = max(p-quantile of |x̂0|, 1), x̂0 = clamp(x̂0, −s, s)/s. `none`: no clamp.
  Ancestral DDPM's posterior mean is a function of x̂0 and x_t only (ε̃ does not enter), so there
  legacy and consistent are the same update; dynamic thresholds its x̂0. The rflow sampler never
  clamps (the recipe refuses consistent/dynamic there).
- guidance_rescale φ (Lin et al., WACV 2024): ε_cfg rescaled per sample to the standard deviation
  of the conditional prediction ε(x, y), then ε̃ = φ·ε_rescaled + (1 − φ)·ε_cfg (φ = 0: plain CFG).
- guidance_interval (lo, hi] (Kynkäänniemi et al., NeurIPS 2024): guidance only at noise levels
  lo < σ_t/α_t <= hi (hi None: no upper end), the conditional prediction alone elsewhere (one
  forward pass). σ_t/α_t is the noise level of x_t/α_t = x0 + (σ_t/α_t)·ε, EDM's σ; for rectified
  flow x_t/(1 − s) = x0 + (s/(1 − s))·ε with s = t/T, so the same number means the same noise level
  under both objectives and intervals published on EDM's σ carry over.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

SAMPLERS = ("ddim", "ddpm", "dpm++", "rflow")
#: sampling.x0_clip
X0_CLIP_MODES = ("legacy", "consistent", "dynamic", "none")


@dataclass(frozen=True)
class SamplerOptions:
    """Run-time sampling options beyond sampler, steps and ω (recipe `sampling.*`); the defaults are
    medlt's behaviour before they existed."""

    x0_clip: str = "legacy"
    dynamic_threshold_quantile: float = 0.995
    guidance_rescale: float = 0.0
    guidance_interval: tuple[float, float | None] | None = None

    def __post_init__(self):
        if self.x0_clip not in X0_CLIP_MODES:
            raise ValueError(f"x0_clip must be one of {', '.join(X0_CLIP_MODES)}, got '{self.x0_clip}'")

    @classmethod
    def from_config(cls, sampling) -> SamplerOptions:
        """From a recipe's `sampling:` section (medlt.recipe.diffusion.SamplingConfig)."""
        iv = sampling.guidance_interval
        return cls(x0_clip=sampling.x0_clip, dynamic_threshold_quantile=float(sampling.dynamic_threshold_quantile),
                   guidance_rescale=float(sampling.guidance_rescale),
                   guidance_interval=None if iv is None else (float(iv[0]), None if iv[1] is None else float(iv[1])))

    def to_dict(self) -> dict:
        """JSON-ready record (what the verbs write next to sampler and steps)."""
        d = asdict(self)
        if d["guidance_interval"] is not None:
            d["guidance_interval"] = list(d["guidance_interval"])
        return d


# ------------------------------------------------------------------ x̂0 and the step's ε (pure maths)

def predicted_x0(x: torch.Tensor, eps: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """x̂0 = (x_t − σ_t·ε)/α_t."""
    return (x - sigma * eps) / alpha


def eps_from_x0(x: torch.Tensor, x0: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """ε̂ = (x_t − α_t·x̂0)/σ_t: the ε that puts x_t on the trajectory through x̂0."""
    return (x - alpha * x0) / sigma


def per_sample_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """(B,) q-quantile of each sample's values over all non-batch dims, linear interpolation between
    order statistics (torch.quantile's default), without torch.quantile's input size limit."""
    flat = values.reshape(values.shape[0], -1)
    n = flat.shape[1]
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    frac = pos - lo
    v_lo = flat.kthvalue(lo + 1, dim=1).values
    if frac == 0 or lo + 1 >= n:
        return v_lo
    v_hi = flat.kthvalue(lo + 2, dim=1).values
    return v_lo + frac * (v_hi - v_lo)


def dynamic_threshold(x0: torch.Tensor, quantile: float) -> torch.Tensor:
    """Saharia et al. (2022): per sample s = max(quantile of |x̂0|, 1), then clamp(x̂0, −s, s)/s."""
    s = per_sample_quantile(x0.abs(), quantile).clamp(min=1.0).reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def clip_mode(x0_clip: str, clip_sample: bool) -> str:
    """The mode the loop applies: `diffusion.clip_sample: false` (x̂0 not bounded, e.g. latents) turns
    legacy into none; consistent and dynamic need clip_sample (ValueError otherwise)."""
    if x0_clip not in X0_CLIP_MODES:
        raise ValueError(f"x0_clip must be one of {', '.join(X0_CLIP_MODES)}, got '{x0_clip}'")
    if clip_sample:
        return x0_clip
    if x0_clip in ("consistent", "dynamic"):
        raise ValueError(f"x0_clip '{x0_clip}' clamps x̂0, but clip_sample is off (x̂0 is not bounded)")
    return "none"


def clipped_prediction(x: torch.Tensor, eps: torch.Tensor, alpha: float, sigma: float, mode: str,
                       quantile: float = 0.995) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂0, ε) as a step uses them under x0_clip `mode` (see the module docstring):
    legacy (clamp(x̂0), ε̃), consistent (clamp(x̂0), ε̂), dynamic (thresholded x̂0, ε̂), none (x̂0, ε̃)."""
    x0 = predicted_x0(x, eps, alpha, sigma)
    if mode == "none":
        return x0, eps
    if mode == "legacy":
        return x0.clamp(-1, 1), eps
    if mode == "consistent":
        x0 = x0.clamp(-1, 1)
    elif mode == "dynamic":
        x0 = dynamic_threshold(x0, quantile)
    else:
        raise ValueError(f"unknown x0_clip mode '{mode}'")
    return x0, eps_from_x0(x, x0, alpha, sigma)


def ddim_step(x: torch.Tensor, eps: torch.Tensor, acp_t: float, acp_prev: float, mode: str,
              quantile: float = 0.995) -> torch.Tensor:
    """One DDIM (η = 0) step from ᾱ_t to ᾱ_t′: x_t′ = α_t′·x̂0 + σ_t′·ε with (x̂0, ε) of `clipped_prediction`."""
    x0, e = clipped_prediction(x, eps, acp_t ** 0.5, (1 - acp_t) ** 0.5, mode, quantile)
    return acp_prev ** 0.5 * x0 + (1 - acp_prev) ** 0.5 * e


# ------------------------------------------------------------------------------------- guidance

def rescaled_guidance(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Lin et al. (2024): φ·ε_cfg·std(ε(x, y))/std(ε_cfg) + (1 − φ)·ε_cfg, the standard deviations per
    sample over all non-batch dims (a constant ε_cfg is left as it is)."""
    if phi == 0:
        return guided
    dims = tuple(range(1, guided.dim()))
    std_g = guided.std(dim=dims, keepdim=True)
    ratio = torch.where(std_g > 0, cond.std(dim=dims, keepdim=True) / std_g.clamp(min=torch.finfo(std_g.dtype).tiny),
                        torch.ones_like(std_g))
    return phi * guided * ratio + (1 - phi) * guided


def in_guidance_interval(noise_level: float, interval: tuple[float, float | None] | None) -> bool:
    """Whether guidance applies at noise level σ/α: lo < σ/α <= hi (hi None: no upper end); no interval: always."""
    if interval is None:
        return True
    lo, hi = interval
    return noise_level > lo and (hi is None or noise_level <= hi)


def noise_level(scheduler, t) -> float:
    """σ_t/α_t of the model's time t: √((1 − ᾱ_t)/ᾱ_t) (DDPM schedule), s/(1 − s) with s = t/T
    (rectified flow; inf at pure noise)."""
    from medlt.diffusion.rflow import is_rflow, rflow_noise_level

    if is_rflow(scheduler):
        return rflow_noise_level(float(t), float(scheduler.num_train_timesteps))
    a = float(scheduler.alphas_cumprod.to(torch.float64)[int(t)])
    return math.sqrt((1 - a) / a)


def guided_eps(model: nn.Module, x: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor,
               guidance_scale: float, rescale: float = 0.0) -> torch.Tensor:
    """ε̃ = (1 + w)·ε(x, y) − w·ε(x, ∅) over all output channels (rectified flow: the same on v); conditional and unconditional rows
    go through the network in one batched forward. w = 0: conditional only (one pass).

    `guidance_scale`: one float, or a (B,) tensor with one w per sample (`medlt synth --guidance-from`).
    `rescale`: φ of `rescaled_guidance` (0: plain classifier-free guidance)."""
    b = x.shape[0]
    if torch.is_tensor(guidance_scale):
        w = guidance_scale.to(x.device, torch.float32).reshape(b, *([1] * (x.dim() - 1)))
        conditional_only = not bool((w != 0).any())
    else:
        w = float(guidance_scale)
        conditional_only = w == 0
    if conditional_only:
        return model(x, timesteps, labels, torch.zeros(b, dtype=torch.bool, device=x.device))
    uncond = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    eps = model(torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([labels, labels]), uncond)
    cond, unc = eps.chunk(2)
    return rescaled_guidance((1 + w) * cond - w * unc, cond, rescale)


def initial_noise(generators: list[torch.Generator], image_shape: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([torch.randn(image_shape, generator=g) for g in generators])


@torch.no_grad()
def sample_loop(model: nn.Module, scheduler, labels: torch.Tensor, generators: list[torch.Generator],
                image_shape: tuple[int, ...], *, guidance_scale: float, num_inference_steps: int,
                sampler: str = "ddim", clip_sample: bool = True, autocast: bool = False,
                callback=None, clamp_output: bool = True, options: SamplerOptions | None = None) -> torch.Tensor:
    """Generate len(generators) samples (B, *image_shape) in model space, clamped to [-1, 1].

    `generators` are CPU torch.Generators, one per sample (seeded by the caller). `scheduler` is the
    training scheduler (DDPMScheduler for ddim/ddpm/dpm++, RFlowScheduler for rflow). clamp_output=False
    (latent diffusion: latents are not bounded) returns the final x unclamped. `options`: x̂0 clip
    mode, guidance rescale and interval (None: the defaults, medlt's behaviour before them)."""
    from medlt.diffusion.rflow import is_rflow

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got '{sampler}'")
    if (sampler == "rflow") != is_rflow(scheduler):
        raise ValueError(f"sampler '{sampler}' does not fit the model's objective "
                         f"({'rflow' if is_rflow(scheduler) else 'epsilon'}): rectified-flow models sample "
                         f"with 'rflow', ε-prediction models with ddim, ddpm or dpm++")
    options = options or SamplerOptions()
    if sampler == "rflow" and options.x0_clip in ("consistent", "dynamic"):
        raise ValueError(f"x0_clip '{options.x0_clip}' does not apply to the rflow sampler (it never clamps x̂0)")
    mode = clip_mode(options.x0_clip, clip_sample and sampler != "rflow")
    q = options.dynamic_threshold_quantile
    device = next(model.parameters()).device
    x = initial_noise(generators, image_shape).to(device)
    labels = labels.to(device)
    b = x.shape[0]

    def predict(x: torch.Tensor, t) -> torch.Tensor:
        tt = torch.full((b,), t, dtype=torch.long if float(t).is_integer() else torch.float32, device=device)
        iv = options.guidance_interval
        w = guidance_scale if iv is None or in_guidance_interval(noise_level(scheduler, t), iv) else 0.0
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            out = guided_eps(model, x, tt, labels, w, options.guidance_rescale)
        return out.float()

    if sampler == "rflow":
        return _rflow_loop(predict, scheduler, x, num_inference_steps, image_shape, callback, clamp_output)
    if sampler == "dpm++":
        return _dpm_loop(predict, scheduler, x, num_inference_steps, mode, callback, clamp_output, q)
    scheduler.set_timesteps(num_inference_steps)
    ts = [int(t) for t in scheduler.timesteps]
    acp = scheduler.alphas_cumprod.to(torch.float64)
    for i, t in enumerate(ts):
        prev = ts[i + 1] if i + 1 < len(ts) else -1
        a_t = float(acp[t])
        a_prev = float(acp[prev]) if prev >= 0 else 1.0
        eps = predict(x, t)
        if sampler == "ddim":
            x = ddim_step(x, eps, a_t, a_prev, mode, q)
        else:  # the posterior mean uses x̂0 and x_t only: legacy and consistent are the same update
            x0, _ = clipped_prediction(x, eps, a_t ** 0.5, (1 - a_t) ** 0.5, mode, q)
            beta = 1 - a_t / a_prev
            mean = (a_prev ** 0.5 * beta / (1 - a_t)) * x0 + ((1 - beta) ** 0.5 * (1 - a_prev) / (1 - a_t)) * x
            if prev >= 0:
                var = (1 - a_prev) / (1 - a_t) * beta
                z = initial_noise(generators, image_shape).to(device)
                x = mean + var ** 0.5 * z
            else:
                x = mean
        if callback is not None:
            callback(i, len(ts))
    return x.clamp(-1, 1) if clamp_output else x


def _rflow_loop(predict, scheduler, x: torch.Tensor, steps: int, image_shape, callback,
                clamp_output: bool = True) -> torch.Tensor:
    """Euler steps on MONAI's flow-time grid (T, ..., then 0): x_t′ = x_t + ((t − t′)/T)·ṽ; the same
    update as RFlowScheduler.step for integer times, without its integer cast of the next time."""
    from medlt.diffusion.rflow import sampling_timesteps

    ts = sampling_timesteps(scheduler, steps, image_shape)
    T = float(scheduler.num_train_timesteps)
    for i in range(len(ts) - 1):
        v = predict(x, ts[i])
        x = x + ((ts[i] - ts[i + 1]) / T) * v
        if callback is not None:
            callback(i, len(ts) - 1)
    return x.clamp(-1, 1) if clamp_output else x


def dpm_clipped_input(x: torch.Tensor, eps: torch.Tensor, alpha: float, sigma: float, mode: str,
                      quantile: float = 0.995) -> tuple[torch.Tensor, torch.Tensor]:
    """(state, ε) handed to DPM-Solver++'s step so that its x0-prediction (x − σ·ε)/α is the clipped
    x̂0 of `clipped_prediction`: legacy re-forms the state α·clamp(x̂0) + σ·ε̃ (ε̃ unchanged, as medlt
    always did); consistent and dynamic keep the state and pass ε̂; none passes both unchanged. A
    first-order step is then exactly `ddim_step` of the same mode."""
    if mode == "none":
        return x, eps
    x0, e = clipped_prediction(x, eps, alpha, sigma, mode, quantile)
    if mode == "legacy":
        return alpha * x0 + sigma * eps, eps
    return x, e


def _dpm_loop(predict, scheduler, x: torch.Tensor, steps: int, mode: str, callback,
              clamp_output: bool = True, quantile: float = 0.995) -> torch.Tensor:
    """DPM-Solver++ 2M (diffusers) driven with medlt's guided ε.

    With a clamp (mode legacy, consistent or dynamic; `dpm_clipped_input`), the solver's
    x0-prediction is the clipped x̂0. Clamping x̂0 inside diffusers (its thresholding) alone leaves
    the out-of-range part of x̂0 inside x, scaled by σ_t·α_s/σ_s each step; at high noise that is
    O(1) and the samples saturate. Here a first-order step is exactly DDIM's update of the same mode
    (tests/diffusion/test_dpm_solver.py, tests/diffusion/test_sampling_clip.py)."""
    from medlt.diffusion.dpm_solver import alpha_sigma, dpm_solver_scheduler

    solver = dpm_solver_scheduler(scheduler, steps)
    ts = [int(t) for t in solver.timesteps]
    for i, t in enumerate(ts):
        eps = predict(x, t)
        if mode != "none":  # with the solver's own α, σ of this grid point
            a, s = alpha_sigma(solver, i)
            x, eps = dpm_clipped_input(x, eps, a, s, mode, quantile)
        x = solver.step(eps, t, x, return_dict=False)[0]
        if callback is not None:
            callback(i, len(ts))
    return x.clamp(-1, 1) if clamp_output else x
