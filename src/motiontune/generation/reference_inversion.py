"""Which DDIM inversion of the reference a generation starts from (design sec. 4, "DDIM inversion").

All four public codes invert under the empty prompt, without guidance. Motion Embeddings and MotionDirector invert
with the base model (before training: the encode pipeline caches it); VMC inverts with its fine-tuned UNet after
training (public ``train_inference.py``) and MotionMatcher through the pipeline with its LoRA loaded (public
``inference.py``), both with as many steps as they sample. The inference options say which:

- ``inversion_model``: ``base`` | ``customised`` (the motion applied, as it is for sampling);
- ``inversion_prompt``: ``empty`` (the public codes) | ``train`` (the artifact's training prompt);
- ``inversion_steps``: DDIM steps; None = the sampling steps.

The base model's empty-prompt inversion cached by the encode pipeline is used when its step count fits; any other
inversion is computed from the reference latents at generation time, once per artifact and setting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from motiontune.backbone.loading import Backbone
from motiontune.sampling.features import INVERSION_PROMPT, INVERSION_STEPS, INVERTED_LATENTS, LATENTS, invert_reference
from motiontune.methods.artifact import MotionArtifact

logger = logging.getLogger(__name__)

INVERSION_MODELS = ("base", "customised")
INVERSION_PROMPTS = ("empty", "train")
# Noise inits that start from the reference's inversion (motiontune.sampling.noise).
NEEDS_INVERSION = ("inversion", "blend", "lowfreq")


def inversion_settings(options: Mapping[str, Any], artifact: MotionArtifact | None) -> tuple[str, str, int]:
    """(model, prompt, steps) of the inversion that ``options`` (resolved inference options) ask for."""
    model = options.get("inversion_model") or "base"
    prompt_kind = options.get("inversion_prompt") or "empty"
    if model not in INVERSION_MODELS:
        raise ValueError(f"inversion_model: '{model}' is not one of {list(INVERSION_MODELS)}")
    if prompt_kind not in INVERSION_PROMPTS:
        raise ValueError(f"inversion_prompt: '{prompt_kind}' is not one of {list(INVERSION_PROMPTS)}")
    if model == "customised" and artifact is None:
        raise ValueError("inversion_model: 'customised' needs a motion; the backbone alone inverts with 'base'")
    prompt = INVERSION_PROMPT if prompt_kind == "empty" or artifact is None else str(artifact.manifest["train_prompt"])
    steps = int(options.get("inversion_steps") or options["steps"])
    if steps < 1:
        raise ValueError(f"inversion_steps: must be at least 1, got {steps}")
    return model, prompt, steps


def reference_inversion(
    backbone: Backbone,
    options: Mapping[str, Any],
    reference: Mapping[str, torch.Tensor] | None,
    artifact: MotionArtifact | None = None,
    cache: dict[tuple[str, str, int], torch.Tensor] | None = None,
    progress: bool = True,
) -> torch.Tensor | None:
    """The inverted reference latents (1, C, F, h, w) a generation with ``options`` starts from, or None when its
    noise init needs none (or no reference is given: the noise init then says what is missing).

    ``reference``: the encoded features (``latents``, and the cached base inversion ``inverted_latents`` with its
    ``inversion_steps``). The UNet inverts as it is: call with the motion applied for ``customised`` and without
    it for ``base``.
    ``cache``: results by (model, prompt, steps), so the prompts of one artifact share one inversion.
    """
    if options.get("noise_init", "random") not in NEEDS_INVERSION or reference is None:
        return None
    model, prompt, steps = inversion_settings(options, artifact)
    if steps != int(options["steps"]):
        logger.warning("the reference is inverted with %d DDIM steps but sampled with %d: the inversion will not "
                       "reconstruct the reference exactly (set inversion_steps: null to use the sampling steps)",
                       steps, int(options["steps"]))
    cached = reference.get(INVERTED_LATENTS)
    cached_steps = int(reference[INVERSION_STEPS].item()) if INVERSION_STEPS in reference else None
    if model == "base" and prompt == INVERSION_PROMPT and cached is not None and cached_steps in (steps, None):
        return cached
    key = (model, prompt, steps)
    if cache is not None and key in cache:
        return cache[key]
    if LATENTS not in reference:
        raise ValueError(
            f"noise_init '{options['noise_init']}' with a {model} inversion under {prompt or 'the empty prompt'!r} in "
            f"{steps} steps needs the reference latents (run the encode pipeline)"
        )
    inverted = invert_reference(backbone, reference[LATENTS], prompt, steps, progress=progress).float().cpu()
    if cache is not None:
        cache[key] = inverted
    return inverted
