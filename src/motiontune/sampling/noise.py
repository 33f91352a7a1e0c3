"""Initial noise for generation (seed 004 A.4): random, DDIM inversion, blend, or inversion low frequencies."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NOISE_INITS = ("random", "inversion", "blend", "lowfreq")


def lowpass(latents: torch.Tensor, factor: int) -> torch.Tensor:
    """Spatial low frequencies of (B, C, F, h, w), per frame: resize down to (h // factor, w // factor) and
    back up, both by antialiased bilinear interpolation with ``align_corners=True``.

    This is the low-pass of DMT (``utilities/initialize_latent.py``, ``high_freqs_replacement_downsampling``)
    and of MotionInversion (``noise_init/freq_init.py``, ``FreqInit``): the size is floored, as there.
    """
    if factor < 1:
        raise ValueError(f"lowfreq_factor: must be at least 1, got {factor}")
    batch, channels, frames, height, width = latents.shape
    small_size = (max(1, height // factor), max(1, width // factor))
    flat = latents.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
    small = F.interpolate(flat, size=small_size, mode="bilinear", align_corners=True, antialias=True)
    smooth = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=True, antialias=True)
    return smooth.reshape(batch, frames, channels, height, width).permute(0, 2, 1, 3, 4)


def initial_noise(
    kind: str,
    shape: tuple[int, ...],
    generator: torch.Generator,
    inverted_latents: torch.Tensor | None = None,
    blend_strength: float = 0.5,
    lowfreq_factor: int = 4,
) -> torch.Tensor:
    """Starting latents (B, C, F, h, w) on CPU.

    ``random``: N(0, I). ``inversion`` (VMC): the DDIM-inverted reference. ``blend`` (MotionDirector,
    Motion Embeddings): ``sqrt(p) z_inv + sqrt(1 - p) eps`` with p = ``blend_strength``. ``lowfreq`` (DMT):
    low frequencies of z_inv (pooling factor ``lowfreq_factor``) plus the high frequencies of eps.
    """
    if kind not in NOISE_INITS:
        raise ValueError(f"noise_init: '{kind}' is not one of {list(NOISE_INITS)}")
    noise = torch.randn(shape, generator=generator)
    if kind == "random":
        return noise
    if inverted_latents is None:
        raise ValueError(f"noise_init '{kind}' needs the DDIM inversion of the reference (run the encode pipeline)")
    inverted = inverted_latents.detach().float().cpu()
    if tuple(inverted.shape[1:]) != tuple(shape[1:]):
        raise ValueError(
            f"noise_init '{kind}': inverted reference has shape {tuple(inverted.shape[1:])}, generation needs "
            f"{tuple(shape[1:])}; encode and generate with the same frames and size"
        )
    inverted = inverted.expand(shape[0], *inverted.shape[1:])
    if kind == "inversion":
        return inverted.clone()
    if kind == "blend":
        if not 0.0 <= blend_strength <= 1.0:
            raise ValueError(f"blend_strength: must be in [0, 1], got {blend_strength}")
        return blend_strength**0.5 * inverted + (1 - blend_strength) ** 0.5 * noise
    return lowpass(inverted, lowfreq_factor) + noise - lowpass(noise, lowfreq_factor)
