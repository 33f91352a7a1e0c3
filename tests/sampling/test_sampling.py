import pytest
import torch

from motiontune.sampling.ddim import ddim_invert, ddim_sample, ddim_timesteps
from motiontune.sampling.latents import PromptError, decode_latents, encode_frames, encode_prompts
from motiontune.sampling.noise import initial_noise, lowpass

SCHEDULE = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "prediction_type": "epsilon",
}


def test_ddim_inversion_is_undone_by_ddim_sampling_for_a_fixed_noise_field():
    # With eps independent of x and t, every DDIM move is an exact affine map, so invert -> sample is identity.
    field = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    clean = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    predict = lambda sample, t: field  # noqa: E731
    noisy = ddim_invert(predict, SCHEDULE, clean, 20, progress=False)
    assert (noisy - clean).abs().mean() > 0.5
    restored = ddim_sample(predict, SCHEDULE, noisy, 20, progress=False)
    torch.testing.assert_close(restored, clean, atol=1e-4, rtol=1e-4)


def test_timesteps_follow_the_scheduler_spacing():
    steps = ddim_timesteps(SCHEDULE, 50)
    assert len(steps) == 50 and steps[0] == 981 and steps[-1] == 1  # "leading" spacing + steps_offset 1
    with pytest.raises(ValueError, match="steps: must be at least 1"):
        ddim_timesteps(SCHEDULE, 0)


def test_noise_inits_follow_their_formulas():
    shape = (1, 4, 4, 8, 8)
    inverted = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    make = lambda kind, **kw: initial_noise(kind, shape, torch.Generator().manual_seed(7), inverted, **kw)  # noqa: E731
    assert torch.equal(make("random"), eps)
    assert torch.equal(make("inversion"), inverted)
    torch.testing.assert_close(make("blend", blend_strength=0.5), 0.5**0.5 * inverted + 0.5**0.5 * eps)
    lowfreq = make("lowfreq", lowfreq_factor=4)
    # DMT: low frequencies of the inversion + high frequencies of the noise
    torch.testing.assert_close(lowfreq, lowpass(inverted, 4) + (eps - lowpass(eps, 4)))
    assert (lowfreq - eps).abs().mean() > 0.1
    constant = torch.full(shape, 2.0)
    torch.testing.assert_close(lowpass(constant, 4), constant)
    with pytest.raises(ValueError, match="'inversion' needs the DDIM inversion"):
        initial_noise("inversion", shape, torch.Generator(), None)
    with pytest.raises(ValueError, match="'perlin' is not one of"):
        initial_noise("perlin", shape, torch.Generator(), inverted)
    with pytest.raises(ValueError, match="encode and generate with the same frames and size"):
        initial_noise("blend", (1, 4, 8, 8, 8), torch.Generator(), inverted)


def test_latents_round_trip_shapes_and_prompt_limits(tiny_backbone):
    frames = (torch.rand(4, 64, 64, 3) * 255).to(torch.uint8).numpy()
    latents = encode_frames(tiny_backbone, frames)
    assert tuple(latents.shape) == (1, 4, 4, 16, 16)
    video = decode_latents(tiny_backbone, latents)
    assert video.shape == (1, 4, 64, 64, 3) and video.dtype.name == "uint8"
    assert tuple(encode_prompts(tiny_backbone, ["a red ball", "a dog"]).shape) == (2, 77, 32)
    with pytest.raises(PromptError, match="more than the text encoder takes \\(77\\)"):
        encode_prompts(tiny_backbone, ["ball " * 100])
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        decode_latents(tiny_backbone, torch.full((1, 4, 1, 16, 16), float("nan")))
