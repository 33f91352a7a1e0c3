"""Generate videos from prompts with a motion applied: noise init, guided DDIM, VAE decode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from motiontune.backbone.loading import Backbone, BackboneSource, backbone_in_process
from motiontune.sections import build_section
from motiontune.methods.artifact import MotionArtifact
from motiontune.training.customize import applied_motion, check_artifact_fits
from motiontune.sampling.ddim import ddim_sample, guided_noise_prediction
from motiontune.sampling.latents import decode_latents, encode_prompts
from motiontune.sampling.noise import initial_noise
from motiontune.generation.reference_inversion import reference_inversion


# Sampling settings of an artifact whose inference defaults lack them (older artifacts): seed 004 A.3.
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE_SCALE = 10.0
DEFAULT_BLEND_STRENGTH = 0.5  # p of noise_init blend when neither the method nor the settings give one (seed 004 A.4)

# Keys of the ``generate`` parameters that say what to generate from, not how to sample: a registered motion
# (an MLflow model URI) and its prompts, read by :mod:`motiontune.tracking.registry`.
GENERATE_SOURCE_KEYS = ("motion", "prompts")
# Keys of the ``generate`` / ``train`` parameters that say where the jobs run (motiontune.executors).
EXECUTOR_KEY = "executor"


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
    # Which DDIM inversion of the reference the inversion / blend / lowfreq inits start from
    # (motiontune.generation.reference_inversion): base | customised, empty | train, steps (None = sampling steps).
    inversion_model: str | None = None
    inversion_prompt: str | None = None
    inversion_steps: int | None = None
    lowfreq_factor: int = 4
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"generate.steps: must be at least 1, got {self.steps}")
        if self.guidance_scale is not None and self.guidance_scale < 0:
            raise ValueError(f"generate.guidance_scale: must be >= 0, got {self.guidance_scale}")

    @classmethod
    def from_params(cls, generate: Mapping[str, Any], section: str = "generate") -> GenerationConfig:
        """The sampling settings out of the ``generate`` parameters (which also say what to generate from:
        :data:`GENERATE_SOURCE_KEYS`); any other key is an error naming the closest known one."""
        return build_section(cls, generate, section, other_keys=(*GENERATE_SOURCE_KEYS, EXECUTOR_KEY))

    def given_inference_options(self) -> dict[str, Any]:
        """The :data:`INFERENCE_OPTIONS` this config sets (not None): they override the artifact's defaults."""
        return {key: getattr(self, key) for key in INFERENCE_OPTIONS if getattr(self, key) is not None}


# Every sampling option, one per GenerationConfig field: what the registry, the pyfunc model and the parameter
# check accept, so a field added above is accepted everywhere.
GENERATION_OPTIONS = tuple(field.name for field in fields(GenerationConfig))
# The options that fall back to the artifact's inference defaults (its method's) when None.
INFERENCE_OPTIONS = tuple(field.name for field in fields(GenerationConfig) if field.default is None)


def resolved_options(artifact: MotionArtifact, config: GenerationConfig) -> dict[str, Any]:
    """Inference options actually used: the config where set, else the artifact's defaults (``steps`` and
    ``guidance_scale`` always present: :data:`DEFAULT_STEPS` / :data:`DEFAULT_GUIDANCE_SCALE` for an artifact
    that records neither)."""
    defaults = {"steps": DEFAULT_STEPS, "guidance_scale": DEFAULT_GUIDANCE_SCALE, **artifact.manifest.get("inference_defaults", {})}
    return {**defaults, **config.given_inference_options()}


def generate_with_motion(
    backbone: Backbone | BackboneSource,
    artifact: MotionArtifact,
    prompts: Sequence[str],
    config: GenerationConfig,
    reference: Mapping[str, torch.Tensor] | None = None,
) -> list[np.ndarray]:
    """One uint8 video (F, H, W, 3) per prompt, each from the same seed so prompts are comparable.

    ``reference``: the reference's encoded features (``latents`` (1, C, F, h, w), and the cached base-model
    inversion ``inverted_latents`` with its ``inversion_steps``), needed by the ``inversion``, ``blend`` and
    ``lowfreq`` noise inits. The inversion they start from follows the options ``inversion_model``,
    ``inversion_prompt`` and ``inversion_steps`` (:mod:`motiontune.generation.reference_inversion`); one computed
    here is kept on the artifact for its next prompts and calls.
    """
    backbone = backbone_in_process(backbone)  # an executor job may get its source
    num_frames = int(artifact.manifest["num_frames"])
    check_artifact_fits(artifact, backbone, num_frames)
    options = resolved_options(artifact, config)
    shape = latent_shape(backbone, num_frames, int(artifact.manifest["height"]), int(artifact.manifest["width"]))
    customised = options.get("inversion_model") == "customised"

    def inversion() -> torch.Tensor | None:
        return reference_inversion(backbone, options, reference, artifact, artifact.inversions, config.progress_bar)

    inverted = None if customised else inversion()  # the base model inverts without the motion
    with applied_motion(backbone, artifact, options):
        if customised:
            inverted = inversion()
        return _sample_videos(backbone, prompts, shape, options, config, inverted)


def generate_without_motion(
    backbone: Backbone,
    prompts: Sequence[str],
    num_frames: int,
    height: int,
    width: int,
    config: GenerationConfig,
    reference: Mapping[str, torch.Tensor] | None = None,
) -> list[np.ndarray]:
    """The un-customised backbone's videos (F, H, W, 3) uint8, one per prompt, sampled exactly as
    :func:`generate_with_motion` samples (the control of a comparison). Unset steps and guidance are
    :data:`DEFAULT_STEPS` / :data:`DEFAULT_GUIDANCE_SCALE`; the noise init is ``config.noise_init``
    (random when unset), from the base model's inversion of ``reference`` (its encoded features)."""
    options = {"steps": DEFAULT_STEPS, "guidance_scale": DEFAULT_GUIDANCE_SCALE, **config.given_inference_options()}
    inverted = reference_inversion(backbone, options, reference, progress=config.progress_bar)
    return _sample_videos(backbone, prompts, latent_shape(backbone, num_frames, height, width), options, config, inverted)


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
            blend_strength=float(options.get("blend_strength", DEFAULT_BLEND_STRENGTH)),
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
