"""Generate videos from prompts with a motion applied: noise init, guided DDIM, VAE decode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from motiontune.backbone.loading import Backbone
from motiontune.motion.artifact import MotionArtifact
from motiontune.motion.customize import applied_motion, check_artifact_fits
from motiontune.sampling.ddim import ddim_sample, guided_noise_prediction
from motiontune.sampling.latents import decode_latents, encode_prompts
from motiontune.sampling.noise import initial_noise


# Sampling settings of an artifact whose inference defaults lack them (older artifacts): seed 004 A.3.
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE_SCALE = 10.0


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings; ``None`` options (``steps`` and ``guidance_scale`` included) fall back to the artifact's
    inference defaults, i.e. its method's (``train.<method>.inference`` at training time)."""

    seed: int = 0
    steps: int | None = None
    guidance_scale: float | None = None
    negative_prompt: str = ""
    debias: str | None = None
    value_scale: float | None = None
    noise_init: str | None = None
    blend_strength: float | None = None
    lora_scale: float | None = None
    lowfreq_factor: int = 4
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"generate.steps: must be at least 1, got {self.steps}")
        if self.guidance_scale is not None and self.guidance_scale < 0:
            raise ValueError(f"generate.guidance_scale: must be >= 0, got {self.guidance_scale}")

    @classmethod
    def from_params(cls, generate: Mapping[str, Any]) -> GenerationConfig:
        """The sampling settings out of the ``generate`` parameters (which also say what to generate from)."""
        return cls(**{key: generate[key] for key in cls.__dataclass_fields__ if key in generate})


def resolved_options(artifact: MotionArtifact, config: GenerationConfig) -> dict[str, Any]:
    """Inference options actually used: the config where set, else the artifact's defaults (``steps`` and
    ``guidance_scale`` always present: :data:`DEFAULT_STEPS` / :data:`DEFAULT_GUIDANCE_SCALE` for an artifact
    that records neither)."""
    options = {"steps": DEFAULT_STEPS, "guidance_scale": DEFAULT_GUIDANCE_SCALE, **artifact.manifest.get("inference_defaults", {})}
    for key in ("debias", "value_scale", "noise_init", "blend_strength", "lora_scale", "steps", "guidance_scale"):
        value = getattr(config, key)
        if value is not None:
            options[key] = value
    return options


def generate_with_motion(
    backbone: Backbone,
    artifact: MotionArtifact,
    prompts: Sequence[str],
    config: GenerationConfig,
    inverted_latents: torch.Tensor | None = None,
) -> list[np.ndarray]:
    """One uint8 video (F, H, W, 3) per prompt, each from the same seed so prompts are comparable.

    ``inverted_latents``: (1, C, F, h, w) DDIM inversion of the reference, needed by the ``inversion``,
    ``blend`` and ``lowfreq`` noise inits.
    """
    num_frames = int(artifact.manifest["num_frames"])
    check_artifact_fits(artifact, backbone, num_frames)
    options = resolved_options(artifact, config)
    shape = latent_shape(backbone, num_frames, int(artifact.manifest["height"]), int(artifact.manifest["width"]))
    with applied_motion(backbone, artifact, options):
        return _sample_videos(backbone, prompts, shape, options, config, inverted_latents)


def generate_without_motion(
    backbone: Backbone,
    prompts: Sequence[str],
    num_frames: int,
    height: int,
    width: int,
    config: GenerationConfig,
    inverted_latents: torch.Tensor | None = None,
) -> list[np.ndarray]:
    """The un-customised backbone's videos (F, H, W, 3) uint8, one per prompt, sampled exactly as
    :func:`generate_with_motion` samples (the control of a comparison). Unset steps and guidance are
    :data:`DEFAULT_STEPS` / :data:`DEFAULT_GUIDANCE_SCALE`; the noise init is ``config.noise_init``
    (random when unset)."""
    options: dict[str, Any] = {"steps": DEFAULT_STEPS, "guidance_scale": DEFAULT_GUIDANCE_SCALE}
    for key in ("noise_init", "blend_strength", "steps", "guidance_scale"):
        value = getattr(config, key)
        if value is not None:
            options[key] = value
    return _sample_videos(backbone, prompts, latent_shape(backbone, num_frames, height, width), options, config, inverted_latents)


def latent_shape(backbone: Backbone, num_frames: int, height: int, width: int) -> tuple[int, ...]:
    """(1, C, F, h, w) of one video's latents."""
    scale = backbone.vae_scale_factor
    return (1, backbone.latent_channels, num_frames, height // scale, width // scale)


def _sample_videos(
    backbone: Backbone,
    prompts: Sequence[str],
    shape: tuple[int, ...],
    options: Mapping[str, Any],
    config: GenerationConfig,
    inverted_latents: torch.Tensor | None,
) -> list[np.ndarray]:
    negative = encode_prompts(backbone, [config.negative_prompt])
    videos: list[np.ndarray] = []
    for index, prompt in enumerate(prompts):
        generator = torch.Generator(device="cpu").manual_seed(config.seed)
        start = initial_noise(
            options.get("noise_init", "random"),
            shape,
            generator,
            inverted_latents=inverted_latents,
            blend_strength=float(options.get("blend_strength", 0.5)),
            lowfreq_factor=config.lowfreq_factor,
        ).to(backbone.device, backbone.dtype)
        predict = guided_noise_prediction(backbone.unet, encode_prompts(backbone, [prompt]), negative, float(options["guidance_scale"]))
        latents = ddim_sample(
            predict, backbone.scheduler_config, start, int(options["steps"]), progress=config.progress_bar,
            description=f"generate {index + 1}/{len(prompts)}",
        )
        videos.append(decode_latents(backbone, latents)[0])
    return videos


def video_id(motion_name: str, index: int, prompt: str) -> str:
    """``<motion>/<NN>_<prompt slug>``: the partition name of a generated video."""
    slug = "-".join("".join(c if c.isalnum() else " " for c in prompt.lower()).split())[:48]
    return f"{motion_name}/{index:02d}_{slug}"
