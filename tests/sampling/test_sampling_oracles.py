"""Sampling pieces against closed forms and diffusers' own schedulers (not against our own code)."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

from motiontune.sampling.ddim import ddim_invert, ddim_sample, guided_noise_prediction
from motiontune.sampling.noise import lowpass

SCHEDULE = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "prediction_type": "epsilon",
}


class UNet3DConditionModel(torch.nn.Module):
    """A stand-in UNet (named as ZeroScope's, so the UNet3D layout calls it) whose prediction is the mean of its
    text embedding times (1 + the sample), per video."""

    def forward(self, sample, timestep, encoder_hidden_states):
        scale = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)
        return type("Output", (), {"sample": scale * (1.0 + sample)})()


def test_classifier_free_guidance_is_eps_u_plus_s_times_eps_c_minus_eps_u():
    sample = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    conditional, unconditional = torch.full((1, 77, 8), 3.0), torch.full((1, 77, 8), 1.0)
    predict = guided_noise_prediction(UNet3DConditionModel(), conditional, unconditional, guidance_scale=7.0)
    eps_c, eps_u = 3.0 * (1.0 + sample), 1.0 * (1.0 + sample)
    torch.testing.assert_close(predict(sample, torch.tensor(10)), eps_u + 7.0 * (eps_c - eps_u))
    # s <= 1 or no negative prompt: the conditional prediction alone
    torch.testing.assert_close(guided_noise_prediction(UNet3DConditionModel(), conditional, None, 7.0)(sample, torch.tensor(10)), eps_c)


def _sample_dependent(sample, timestep):
    # A prediction that depends on the sample and the timestep, so an error in any coefficient shows.
    return 0.3 * sample + 0.001 * float(timestep) * torch.ones_like(sample)


def test_one_ddim_step_follows_the_closed_form():
    alphas = DDIMScheduler.from_config(SCHEDULE).alphas_cumprod
    start = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    # Two steps, "leading" spacing + steps_offset 1: 501 -> 1 -> final (alpha of timestep 0: set_alpha_to_one false).
    result = ddim_sample(_sample_dependent, SCHEDULE, start, 2, progress=False)
    x = start
    for t, t_next in ((501, 1), (1, None)):
        a = alphas[t]
        a_next = alphas[t_next] if t_next is not None else alphas[0]
        eps = _sample_dependent(x, t)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    torch.testing.assert_close(result, x)


def test_ddim_sampling_equals_diffusers_ddim_scheduler_step():
    scheduler = DDIMScheduler.from_config(SCHEDULE)
    scheduler.set_timesteps(10)
    start = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    x = start
    for t in scheduler.timesteps:
        x = scheduler.step(_sample_dependent(x, t), t, x, eta=0.0).prev_sample
    torch.testing.assert_close(ddim_sample(_sample_dependent, SCHEDULE, start, 10, progress=False), x)


def test_ddim_inversion_equals_diffusers_ddim_inverse_scheduler_step():
    scheduler = DDIMInverseScheduler.from_config(SCHEDULE)
    scheduler.set_timesteps(10)
    clean = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    x = clean
    for t in scheduler.timesteps:
        x = scheduler.step(_sample_dependent(x, t), t, x).prev_sample
    torch.testing.assert_close(ddim_invert(_sample_dependent, SCHEDULE, clean, 10, progress=False), x)


def test_lowpass_is_the_antialiased_bilinear_resize_of_dmt_and_motion_inversion():
    # A non-constant field: a smooth ramp plus a checkerboard (the highest spatial frequency).
    height, width, factor = 16, 12, 4
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    ramp = 0.1 * xs + 0.05 * ys
    checker = ((xs + ys) % 2) * 2 - 1
    field = (ramp + checker).expand(1, 2, 3, height, width).clone()  # (B, C, F, h, w)
    # DMT utilities/initialize_latent.py / MotionInversion noise_init/freq_init.py, written out per frame:
    flat = field.permute(0, 2, 1, 3, 4).reshape(3, 2, height, width)
    down = torch.nn.functional.interpolate(flat, size=(height // factor, width // factor), mode="bilinear", align_corners=True, antialias=True)
    up = torch.nn.functional.interpolate(down, size=(height, width), mode="bilinear", align_corners=True, antialias=True)
    expected = up.reshape(1, 3, 2, height, width).permute(0, 2, 1, 3, 4)
    low = lowpass(field, factor)
    torch.testing.assert_close(low, expected)
    # It is a low-pass: the checkerboard is mostly gone, the ramp mostly kept.
    assert (low - ramp).abs().mean() < 0.5 * (field - ramp).abs().mean()


@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing"])
@pytest.mark.parametrize("steps", [3, 7, 10])
def test_ddim_sampling_equals_diffusers_for_every_timestep_spacing(spacing, steps):
    config = {**SCHEDULE, "timestep_spacing": spacing}
    scheduler = DDIMScheduler.from_config(config)
    scheduler.set_timesteps(steps)
    start = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    x = start
    for t in scheduler.timesteps:
        x = scheduler.step(_sample_dependent(x, t), t, x, eta=0.0).prev_sample
    torch.testing.assert_close(ddim_sample(_sample_dependent, config, start, steps, progress=False), x)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [3, 7])
def test_ddim_inversion_equals_diffusers_inverse_scheduler_for_its_spacings(spacing, steps):
    config = {**SCHEDULE, "timestep_spacing": spacing}
    scheduler = DDIMInverseScheduler.from_config(config)
    scheduler.set_timesteps(steps)
    clean = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    x = clean
    for t in scheduler.timesteps:
        x = scheduler.step(_sample_dependent(x, t), t, x).prev_sample
    torch.testing.assert_close(ddim_invert(_sample_dependent, config, clean, steps, progress=False), x)


@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing"])
def test_inversion_mirrors_each_sampling_step_so_a_sample_independent_prediction_reconstructs(spacing):
    # diffusers' DDIMInverseScheduler refuses linspace; ours mirrors every step of the sampler, so with a noise
    # prediction that does not depend on the sample, sampling the inversion gives the input back exactly.
    config = {**SCHEDULE, "timestep_spacing": spacing}

    def constant(sample, timestep):
        return torch.full_like(sample, 0.2) + 0.0005 * float(timestep)

    clean = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(6))
    inverted = ddim_invert(constant, config, clean, 7, progress=False)
    torch.testing.assert_close(ddim_sample(constant, config, inverted, 7, progress=False), clean, atol=1e-4, rtol=1e-4)


# A clip range small enough that x0_hat of a unit-variance start leaves it at every step, so the clamp is active.
CLIPPED = {**SCHEDULE, "clip_sample": True, "clip_sample_range": 0.5}


def test_ddim_sampling_clamps_x0_hat_as_diffusers_ddim_scheduler_with_clip_sample():
    scheduler = DDIMScheduler.from_config(CLIPPED)
    scheduler.set_timesteps(7)
    start = 2.0 * torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(7))
    x = start
    for t in scheduler.timesteps:
        x = scheduler.step(_sample_dependent(x, t), t, x, eta=0.0).prev_sample
    ours = ddim_sample(_sample_dependent, CLIPPED, start, 7, progress=False)
    torch.testing.assert_close(ours, x)
    assert (ours - ddim_sample(_sample_dependent, SCHEDULE, start, 7, progress=False)).abs().max() > 0.1


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_inversion_clamps_x0_hat_as_diffusers_inverse_scheduler_with_clip_sample(spacing):
    config = {**CLIPPED, "timestep_spacing": spacing}
    scheduler = DDIMInverseScheduler.from_config(config)
    scheduler.set_timesteps(7)
    clean = 2.0 * torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(8))
    x = clean
    for t in scheduler.timesteps:
        x = scheduler.step(_sample_dependent(x, t), t, x).prev_sample
    ours = ddim_invert(_sample_dependent, config, clean, 7, progress=False)
    torch.testing.assert_close(ours, x)
    unclipped = {**config, "clip_sample": False}
    assert (ours - ddim_invert(_sample_dependent, unclipped, clean, 7, progress=False)).abs().max() > 0.1
