"""Rectified flow objective: MONAI's time sampling from the step generator, velocity target, every
regularizer trains with it, Euler sampling against MONAI's step, sampler/objective checks."""

import math

import pytest
import torch
from monai.networks.schedulers import RFlowScheduler

from medlt.diffusion.label_samplers import LabelBank
from medlt.diffusion.metrics_log import read_metrics
from medlt.diffusion.objective import training_terms
from medlt.diffusion.rflow import flow_timesteps, sampling_timesteps
from medlt.diffusion.sample import load_generator
from medlt.diffusion.sampling import sample_loop
from medlt.diffusion.schedule import build_scheduler
from medlt.diffusion.train import train
from medlt.errors import MedltError, RecipeError
from medlt.recipe.diffusion import DiffusionConfig
from tests.diffusion.toy import toy_data, toy_recipe

ALL = "regularizers=[{name: cbdm}, {name: overlap}, {name: ccua}]"
RFLOW = ["diffusion.objective=rflow", "sampling.sampler=rflow"]


def test_flow_times_are_monais_draw_from_the_step_generator():
    sched = build_scheduler(DiffusionConfig(objective="rflow", num_train_timesteps=1000))
    assert isinstance(sched, RFlowScheduler)
    x0 = torch.zeros(4096, 1, 4, 4)
    a = flow_timesteps(sched, x0, torch.Generator().manual_seed(5))
    b = flow_timesteps(sched, x0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.long
    # exactly MONAI's sample_timesteps under the seed the generator hands out
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(5)))
    torch.manual_seed(seed)
    assert torch.equal(a, sched.sample_timesteps(torch.zeros(4096, 1, 4, 4)))
    assert a.min() >= 0 and a.max() <= 999 and abs(a.float().mean().item() - 499.5) < 15  # U{0..999}
    # the global RNG is left alone
    torch.manual_seed(1)
    before = torch.rand(3)
    torch.manual_seed(1)
    flow_timesteps(sched, x0, torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), before)


def test_logit_normal_times():
    cfg = DiffusionConfig(objective="rflow", rflow={"sample_method": "logit-normal", "logit_normal_loc": 1.0,
                                                    "discrete_timesteps": False})
    t = flow_timesteps(build_scheduler(cfg), torch.zeros(20000, 1, 2, 2), torch.Generator().manual_seed(0))
    s = t / 1000
    logit = torch.log(s / (1 - s))
    assert t.is_floating_point() and abs(logit.mean().item() - 1.0) < 0.05 and abs(logit.std().item() - 1) < 0.05


class _Const(torch.nn.Module):
    """Returns zeros (so the MSE is the target's power) and records its inputs."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, labels, uncond, return_features=False):
        self.seen = (x, t)
        out = x * 0 + self.p
        return (out, out.mean(dim=(2, 3))) if return_features else out


def test_velocity_target_and_noisy_input():
    sched = build_scheduler(DiffusionConfig(objective="rflow", num_train_timesteps=100))
    x0 = torch.rand(6, 1, 4, 4) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    model = _Const()
    bank = LabelBank([2, 2, 2], False)
    st = training_terms(model, sched, [], x0, labels, bank=bank, label_drop_prob=0.0,
                        generator=torch.Generator().manual_seed(0), noise_generator=torch.Generator().manual_seed(9))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))
    x_t, t = model.seen
    s = (t.double() / 100).float()[:, None, None, None]
    assert torch.allclose(x_t, (1 - s) * x0 + s * noise, atol=1e-6)  # MONAI: t = T is pure noise
    assert torch.allclose(st.terms["mse"], (x0 - noise).pow(2).flatten(1).mean(1), atol=1e-6)  # v = x0 − ε


@pytest.mark.parametrize("objective", ["epsilon", "rflow"])
def test_both_objectives_train_with_every_regularizer(tmp_path, objective):
    sets = [ALL, "training.max_steps=24", "training.warmup_steps=1", "training.lr=3e-3",
            "training.checkpoint_every_steps=24"] + (RFLOW if objective == "rflow" else [])
    seen: list[set] = []
    ckpt = train(toy_recipe(tmp_path, sets), tmp_path / "run", data=toy_data(),
                 step_hook=lambda step, st: seen.append(set(st.terms)))
    assert all(s == {"mse", "cbdm", "overlap", "ccua_ucl", "ccua_al"} for s in seen) and len(seen) == 24
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    loss = [float(r["loss"]) for r in rows]
    assert all(math.isfinite(v) for v in loss)
    for k in ("cbdm", "overlap", "ccua_ucl", "ccua_al"):
        assert all(math.isfinite(float(r[k])) for r in rows)
    first, last = sum(loss[:6]) / 6, sum(loss[-6:]) / 6
    assert last < first, (objective, first, last)
    gen = load_generator(ckpt)
    sampler = "rflow" if objective == "rflow" else "ddim"
    a = gen.generate(torch.tensor([0, 2]), [1, 2], guidance_scale=1.0, num_inference_steps=4, sampler=sampler)
    b = gen.generate(torch.tensor([2]), [2], guidance_scale=1.0, num_inference_steps=4, sampler=sampler)
    assert a.shape == (2, 1, 8, 8) and torch.isfinite(a).all() and a.abs().max() <= 1
    assert torch.allclose(a[1], b[0], atol=1e-5)
    wrong = "ddim" if objective == "rflow" else "rflow"
    with pytest.raises(MedltError, match="does not fit"):
        gen.generate(torch.tensor([0]), [1], guidance_scale=1.0, num_inference_steps=2, sampler=wrong)


def test_multilabel_rflow_trains(tmp_path):
    recipe = toy_recipe(tmp_path, [ALL, "training.max_steps=2", *RFLOW,
                                   "diffusion.rflow.sample_method=logit-normal"], multi_label=True)
    ckpt = train(recipe, tmp_path / "run", data=toy_data(multi_label=True))
    x = load_generator(ckpt).generate(torch.tensor([[1.0, 0, 1]]), [3], guidance_scale=0.5,
                                      num_inference_steps=3, sampler="rflow")
    assert x.shape == (1, 1, 8, 8) and torch.isfinite(x).all()


def test_euler_loop_matches_monai_step():
    sched = build_scheduler(DiffusionConfig(objective="rflow", num_train_timesteps=1000))
    torch.manual_seed(0)
    w = torch.randn(1, 1, 4, 4)

    class Lin(torch.nn.Module):  # v(x, t) = w·x + t/1000, conditional == unconditional
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(w.clone())

        def forward(self, x, t, labels, uncond):
            return self.w * x + (t.float() / 1000)[:, None, None, None]

    model = Lin()
    gens = [torch.Generator().manual_seed(3)]
    ours = sample_loop(model, sched, torch.tensor([0]), gens, (1, 4, 4), guidance_scale=0.7,
                       num_inference_steps=7, sampler="rflow")
    x = torch.randn((1, 4, 4), generator=torch.Generator().manual_seed(3))[None]
    ts = sampling_timesteps(sched, 7, (1, 4, 4))
    assert ts[0] == 1000 and ts[-1] == 0 and len(ts) == 8
    ref = RFlowScheduler(num_train_timesteps=1000)
    ref.set_timesteps(7)
    for t, nxt in zip(ts[:-1], ts[1:], strict=True):
        v = model(x, torch.tensor([t]), None, None)
        x, _ = ref.step(v, t, x, nxt)
    assert torch.allclose(ours, x.clamp(-1, 1), atol=1e-5)


def test_recipe_rejects_sampler_of_the_other_objective(tmp_path):
    with pytest.raises(RecipeError, match=r"sampling\.sampler.*rflow"):
        toy_recipe(tmp_path, ["diffusion.objective=rflow"])
    with pytest.raises(RecipeError, match=r"sampling\.sampler"):
        toy_recipe(tmp_path, ["sampling.sampler=rflow"])
    with pytest.raises(RecipeError, match="sample_method"):
        toy_recipe(tmp_path, [*RFLOW, "diffusion.rflow.sample_method=gaussian"])
    with pytest.raises(RecipeError, match="logit_normal_scale"):
        toy_recipe(tmp_path, [*RFLOW, "diffusion.rflow.logit_normal_scale=0"])
    assert toy_recipe(tmp_path, RFLOW).diffusion.objective == "rflow"


def test_timestep_transform_shifts_toward_noise_for_large_images():
    plain = DiffusionConfig(objective="rflow", rflow={"discrete_timesteps": False})
    shifted = DiffusionConfig(objective="rflow", rflow={"discrete_timesteps": False, "timestep_transform": True,
                                                        "base_img_size_numel": 16 * 16})
    x0 = torch.zeros(4000, 1, 64, 64)  # 16x the base size: ratio 4 in 2D
    a = flow_timesteps(build_scheduler(plain), x0, torch.Generator().manual_seed(0))
    b = flow_timesteps(build_scheduler(shifted, spatial_dims=2), x0, torch.Generator().manual_seed(0))
    s = a / 1000
    assert torch.allclose(b / 1000, 4 * s / (1 + 3 * s), atol=1e-5) and b.mean() > a.mean() + 150
    ts = sampling_timesteps(build_scheduler(shifted, spatial_dims=2), 5, (1, 64, 64))
    assert ts[0] == 1000 and ts[-1] == 0 and ts[1] > 800  # plain grid: 800
