"""Issue 15, items 1, 2 and 4, and debias at generation: where the public codes' choices change every video.

The expected inversions are computed with diffusers' own ``DDIMInverseScheduler`` and the UNet, not with our
inversion loop.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from diffusers import DDIMInverseScheduler

from motiontune.sampling.features import INVERSION_STEPS, INVERTED_LATENTS, LATENTS, PROMPT_EMBEDS, SIMPLIFIED_PROMPT_EMBEDS, encode_reference
from motiontune.training import customize
from motiontune.methods.artifact import MotionArtifact
from motiontune.training.customize import applied_motion, learn_motion, training_config_for
from motiontune.methods.embeddings import debias_value, split_by_block
from motiontune.io.references import training_prompt
from motiontune.generation import generate as generation
from motiontune.generation.generate import GenerationConfig, generate_with_motion, resolved_options
from motiontune.sampling.latents import encode_prompts

from motion_helpers import FRAMES, PIXELS, quick_config, random_reference

pytestmark = pytest.mark.usefixtures("restore_unet")
STEPS = 3


def diffusers_inversion(backbone, latents, prompt, steps):
    """DDIM inversion with diffusers' DDIMInverseScheduler under ``prompt``, no guidance, the UNet as it is now."""
    scheduler = DDIMInverseScheduler.from_config(backbone.scheduler_config)
    scheduler.set_timesteps(steps)
    text = encode_prompts(backbone, [prompt])
    sample = latents.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            sample = scheduler.step(backbone.unet(sample, t, encoder_hidden_states=text).sample, t, sample).prev_sample
    return sample


def reference_features(backbone):
    frames = (np.random.default_rng(0).random((FRAMES, PIXELS, PIXELS, 3)) * 255).astype(np.uint8)
    return encode_reference(backbone, frames, "a red ball rolling on the grass", "a ball rolling", STEPS, progress=False)


def test_the_reference_is_inverted_under_the_empty_prompt(tiny_backbone):
    features = reference_features(tiny_backbone)
    empty = diffusers_inversion(tiny_backbone, features[LATENTS], "", STEPS)
    torch.testing.assert_close(features[INVERTED_LATENTS], empty, rtol=1e-4, atol=1e-4)
    under_caption = diffusers_inversion(tiny_backbone, features[LATENTS], "a red ball rolling on the grass", STEPS)
    assert (under_caption - empty).abs().max() > 1e-3  # the prompt matters, so the check above can fail
    assert int(features[INVERSION_STEPS]) == STEPS


def captured_starts(monkeypatch):
    starts = []
    sample = generation.ddim_sample

    def recording(predict, scheduler, start, steps, **kwargs):
        starts.append(start.clone())
        return sample(predict, scheduler, start, steps, **kwargs)

    monkeypatch.setattr(generation, "ddim_sample", recording)
    return starts


def trained(backbone, method, options, features, learning_rate):
    row = {"num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "source_path": "r.mp4", "source_sha256": "0" * 64,
           "train_prompt": "a red ball rolling on the grass", "simplified_train_prompt": "a ball rolling"}
    artifact, _ = learn_motion(backbone, method, options, quick_config(steps=2, learning_rate=learning_rate), features, row)
    return artifact


def test_vmc_and_motionmatcher_invert_with_the_customised_unet_base_methods_reuse_the_cached_inversion(tiny_backbone, monkeypatch):
    features = reference_features(tiny_backbone)
    config = GenerationConfig(steps=STEPS, noise_init="inversion", progress_bar=False)
    starts = captured_starts(monkeypatch)
    for method, options, learning_rate in (("vmc", {}, 5e-2), ("motionmatcher", {"rank": 4}, 5e-2)):
        artifact = trained(tiny_backbone, method, options, features, learning_rate)
        assert artifact.manifest["inference_defaults"]["inversion_model"] == "customised"
        generate_with_motion(tiny_backbone, artifact, ["a cat", "a dog"], config, features)
        with applied_motion(tiny_backbone, artifact, resolved_options(artifact, config)):
            expected = diffusers_inversion(tiny_backbone, features[LATENTS], "", STEPS)
        torch.testing.assert_close(starts[-1], expected, rtol=1e-4, atol=1e-4)
        assert (expected - features[INVERTED_LATENTS]).abs().max() > 1e-4, method  # the customised UNet inverts otherwise
        assert len(artifact.inversions) == 1  # computed once for both prompts, kept on the artifact
    for method, options in (("motion_embeddings", {"blocks": "deep"}), ("motiondirector", {"rank": 4})):
        artifact = trained(tiny_backbone, method, options, features, 5e-2)
        assert artifact.manifest["inference_defaults"]["inversion_model"] == "base"
        generate_with_motion(tiny_backbone, artifact, ["a cat"], config, features)
        assert torch.equal(starts[-1], features[INVERTED_LATENTS]) and not artifact.inversions


def test_inversion_options_other_steps_and_the_training_prompt(tiny_backbone, monkeypatch, caplog):
    features = reference_features(tiny_backbone)
    artifact = trained(tiny_backbone, "motion_embeddings", {"blocks": "deep"}, features, 5e-2)
    starts = captured_starts(monkeypatch)
    caplog.set_level(logging.WARNING)
    # Steps other than the cached inversion's: the base model inverts again, with a warning that they differ.
    generate_with_motion(tiny_backbone, artifact, ["a cat"], GenerationConfig(steps=STEPS, inversion_steps=2, noise_init="inversion", progress_bar=False), features)
    torch.testing.assert_close(starts[-1], diffusers_inversion(tiny_backbone, features[LATENTS], "", 2), rtol=1e-4, atol=1e-4)
    assert "inverted with 2 DDIM steps but sampled with 3" in caplog.text
    # inversion_prompt: train = under the motion's training prompt (the caption for Motion Embeddings).
    generate_with_motion(tiny_backbone, artifact, ["a cat"], GenerationConfig(steps=STEPS, inversion_prompt="train", noise_init="inversion", progress_bar=False), features)
    torch.testing.assert_close(starts[-1], diffusers_inversion(tiny_backbone, features[LATENTS], "a red ball rolling on the grass", STEPS), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="inversion_model: 'finetuned' is not one of"):
        generate_with_motion(tiny_backbone, artifact, ["a cat"], GenerationConfig(steps=STEPS, inversion_model="finetuned", noise_init="inversion", progress_bar=False), features)


def test_only_vmc_trains_on_the_simplified_prompt_and_a_manifest_train_prompt_wins(tiny_backbone, monkeypatch):
    reference = random_reference(4)
    features = {LATENTS: reference["latents"], PROMPT_EMBEDS: torch.zeros(1, 77, 32), SIMPLIFIED_PROMPT_EMBEDS: torch.ones(1, 77, 32)}
    row = {"num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "source_path": "r.mp4", "source_sha256": "0" * 64,
           "train_prompt": "a red ball rolling on the grass", "simplified_train_prompt": "a ball rolling"}
    seen = {}
    real = customize.train_motion
    monkeypatch.setattr(customize, "train_motion", lambda method, backbone, latents, prompt, *a, **k: seen.setdefault(method.name, prompt) is not None and real(method, backbone, latents, prompt, *a, **k))
    for method, options in (("vmc", {}), ("motion_embeddings", {"blocks": "deep"}), ("motiondirector", {"rank": 4}), ("motionmatcher", {"rank": 4})):
        config = training_config_for({"method": method, method: options, "steps": 1, "learning_rate": 1e-3, "checkpoint_every": 0, "progress_bar": False})
        artifact, _ = learn_motion(tiny_backbone, method, options, config, features, row)
        simplified = method == "vmc"
        assert config.simplified_prompt is simplified
        assert torch.equal(seen[method], features[SIMPLIFIED_PROMPT_EMBEDS if simplified else PROMPT_EMBEDS]), method
        assert artifact.manifest["train_prompt"] == ("a ball rolling" if simplified else "a red ball rolling on the grass")
        assert artifact.manifest["hyperparameters"]["simplified_prompt"] is simplified
    # The global switch overrides every method's choice.
    assert training_config_for({"method": "motion_embeddings", "simplified_prompt": True}).simplified_prompt is True
    # A manifest train_prompt is both prompts of the row (references.prepare_references), so every method trains on it.
    given = {"train_prompt": "a ball", "simplified_train_prompt": "a ball"}
    assert training_prompt(given, True) == training_prompt(given, False) == "a ball"


def test_inference_debias_reaches_the_generated_video(tiny_backbone):
    """frame_diff at generation = vanilla generation of the value embeddings debiased by hand (seed 002 eq. 5)."""
    blocks = "deep"
    features = reference_features(tiny_backbone)
    artifact = trained(tiny_backbone, "motion_embeddings", {"blocks": blocks}, features, 5e-1)
    generator = torch.Generator().manual_seed(0)
    tensors = {key: torch.randn(value.shape, generator=generator) for key, value in artifact.tensors.items()}
    motion = MotionArtifact(tensors=tensors, manifest=artifact.manifest)
    by_hand = {}
    for key, value in tensors.items():
        if key.endswith(".value"):
            frame_diff = value.clone()
            frame_diff[:, 1:] = value[:, 1:] - value[:, :-1]
            by_hand[key] = frame_diff
        else:
            by_hand[key] = value
    assert set(split_by_block(tensors)) == set(split_by_block(by_hand))
    config = {"steps": 2, "noise_init": "random", "progress_bar": False}
    debiased = generate_with_motion(tiny_backbone, motion, ["a cat"], GenerationConfig(debias="frame_diff", **config))[0]
    vanilla_by_hand = generate_with_motion(tiny_backbone, MotionArtifact(tensors=by_hand, manifest=artifact.manifest), ["a cat"],
                                           GenerationConfig(debias="vanilla", **config))[0]
    vanilla = generate_with_motion(tiny_backbone, motion, ["a cat"], GenerationConfig(debias="vanilla", **config))[0]
    assert np.array_equal(debiased, vanilla_by_hand)
    assert not np.array_equal(debiased, vanilla)  # so the equality above is not true of any two generations
    assert torch.equal(debias_value(tensors[next(k for k in tensors if k.endswith(".value"))], "frame_diff"),
                       by_hand[next(k for k in tensors if k.endswith(".value"))])
