"""The one training checkpoint (motiontune.training.checkpoint) shared by the motion methods' loop and the world
backbone's stages: each loop resumes bitwise through it, and refuses a checkpoint of another run, whichever
loop wrote it."""

from __future__ import annotations

import copy
import logging
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from motiontune.methods.base import build_method
from motiontune.training.checkpoint import PARAM_GROUPS, fingerprint
from motiontune.training.loop import CHECKPOINT_FILE, train_motion
from motiontune.world_models.backbone_training import VaeStage, WorldBackboneConfig, train_vae

from motion_helpers import FRAMES, PIXELS, quick_config, random_reference


@pytest.fixture(scope="module")
def reference():
    return random_reference(11)


def motion(backbone):
    method = build_method("motion_embeddings", {"blocks": "deep"}, backbone, FRAMES, PIXELS, PIXELS)
    return method


def train(backbone, reference, checkpoint_dir=None, die_at=None, **overrides):
    """Train a fresh motion (4 steps, a checkpoint every 2); ``die_at``: the step whose loss raises KeyboardInterrupt."""
    method = motion(backbone)
    if die_at is not None:
        real_loss = method.training_loss

        def dying_loss(backbone, batch):
            if batch.step == die_at:
                raise KeyboardInterrupt
            return real_loss(backbone, batch)

        method.training_loss = dying_loss
    config = quick_config(**{"steps": 4, "checkpoint_every": 2, "learning_rate": 1e-2, **overrides})
    result = train_motion(method, backbone, reference["latents"], reference["prompt_embeds"], config, checkpoint_dir)
    return result, {key: value.clone() for key, value in method.artifact_tensors().items()}


def equal(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def without_param_groups(path):
    """Rewrite a checkpoint as the motion loop wrote it before the shared module (no optimizer param groups)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = {key: value for key, value in (handle.metadata() or {}).items() if key != PARAM_GROUPS}
    save_file(load_file(str(path)), str(path), metadata=metadata)


def test_the_motion_loop_resumes_bitwise_also_from_a_checkpoint_in_the_earlier_format(tiny_backbone, reference, tmp_path):
    unbroken, unbroken_tensors = train(tiny_backbone, reference)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_backbone, reference, tmp_path / "a", die_at=3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_backbone, reference, tmp_path / "b", die_at=3)
    without_param_groups(tmp_path / "b" / CHECKPOINT_FILE)
    for folder in ("a", "b"):
        resumed, resumed_tensors = train(tiny_backbone, reference, tmp_path / folder)
        assert resumed.resumed_from_step == 2, folder
        assert resumed.loss_history == unbroken.loss_history, folder
        assert equal(resumed_tensors, unbroken_tensors), folder


def world_config(steps):
    return WorldBackboneConfig(seed=2, vae=VaeStage(steps=steps, batch_size=2), checkpoint_every=2, log_every=1, progress_bar=False)


def trainable_vae(backbone):
    """A copy of the backbone's (frozen) VAE, trainable as the world backbone's first stage trains it."""
    return copy.deepcopy(backbone.vae).requires_grad_(True)


@pytest.fixture(scope="module")
def frames():
    return (np.random.default_rng(0).random((6, PIXELS, PIXELS, 3)) * 255).astype(np.uint8)


def test_the_world_vae_stage_resumes_bitwise_through_the_shared_checkpoint(tiny_backbone, frames, tmp_path):
    run = fingerprint("vae stage", world_config(4))
    unbroken_vae = trainable_vae(tiny_backbone)
    unbroken = train_vae(unbroken_vae, frames, world_config(4), tmp_path / "unbroken", run)

    killed_vae = trainable_vae(tiny_backbone)
    calls = {"n": 0}
    real_decode = killed_vae.decode

    def dying_decode(*args, **kwargs):  # the third step dies, after the step-2 checkpoint
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_decode(*args, **kwargs)

    killed_vae.decode = dying_decode
    with pytest.raises(KeyboardInterrupt):
        train_vae(killed_vae, frames, world_config(4), tmp_path / "killed", run)
    checkpoint = tmp_path / "killed" / "vae_checkpoint.safetensors"
    with safe_open(str(checkpoint), framework="pt") as handle:
        assert {"step", "fingerprint", PARAM_GROUPS} <= set(handle.metadata()) and handle.metadata()["step"] == "2"
    keys = set(load_file(str(checkpoint)))
    assert {"rng_state", "loss_history"} <= keys and any(k.startswith("vae.") for k in keys) and any(k.startswith("optimizer.") for k in keys)

    resumed_vae = trainable_vae(tiny_backbone)
    resumed = train_vae(resumed_vae, frames, world_config(4), tmp_path / "killed", run)
    assert resumed == unbroken
    assert equal(resumed_vae.state_dict(), unbroken_vae.state_dict())


def test_a_checkpoint_of_another_run_or_of_the_other_loop_is_refused(tiny_backbone, reference, frames, tmp_path, caplog):
    fresh, fresh_tensors = train(tiny_backbone, reference, learning_rate=2e-2)

    # the motion loop, other settings: the checkpoint is ignored and the run starts afresh
    train(tiny_backbone, reference, tmp_path / "motion")
    with caplog.at_level(logging.WARNING, logger="motiontune.training.checkpoint"):
        other, other_tensors = train(tiny_backbone, reference, tmp_path / "motion", learning_rate=2e-2)
    assert "it was made with other settings or inputs" in caplog.text
    assert other.resumed_from_step == 0 and other.loss_history == fresh.loss_history and equal(other_tensors, fresh_tensors)

    # the world backbone's checkpoint under the motion loop's name, and the motion loop's under the VAE stage's
    caplog.clear()
    train_vae(trainable_vae(tiny_backbone), frames, world_config(3), tmp_path / "world", fingerprint("vae stage", world_config(3)))
    (tmp_path / "swapped").mkdir()
    shutil.copy(tmp_path / "world" / "vae_checkpoint.safetensors", tmp_path / "swapped" / CHECKPOINT_FILE)
    with caplog.at_level(logging.WARNING, logger="motiontune.training.checkpoint"):
        swapped, swapped_tensors = train(tiny_backbone, reference, tmp_path / "swapped", learning_rate=2e-2)
    assert swapped.resumed_from_step == 0 and swapped.loss_history == fresh.loss_history and equal(swapped_tensors, fresh_tensors)

    shutil.copy(tmp_path / "motion" / CHECKPOINT_FILE, tmp_path / "world" / "vae_checkpoint.safetensors")
    unbroken = train_vae(trainable_vae(tiny_backbone), frames, world_config(3), tmp_path / "clean", fingerprint("vae stage", world_config(3)))
    with caplog.at_level(logging.WARNING, logger="motiontune.training.checkpoint"):
        refused = train_vae(trainable_vae(tiny_backbone), frames, world_config(3), tmp_path / "world", fingerprint("vae stage", world_config(3)))
    assert refused == unbroken and len(refused) == 3
    assert caplog.text.count("it was made with other settings or inputs") == 2
