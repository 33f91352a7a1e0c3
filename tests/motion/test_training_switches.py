"""The memory/speed switches a motion was trained with are recorded in its manifest, and an fp16 run's
GradScaler state survives a checkpoint (tested with a CPU GradScaler: no CUDA needed)."""

import json
import logging

import pytest
import torch

from motiontune.methods.artifact import MANIFEST_FILE, load_motion_artifact, save_motion_artifact
from motiontune.training.customize import learn_motion
from motiontune.training.checkpoint import (
    GRAD_SCALER_SCALE,
    grad_scaler_state,
    load_checkpoint,
    parameter_weights,
    restore_grad_scaler,
    save_checkpoint,
)
from motiontune.training.loop import TrainingConfig

FRAMES, PIXELS = 4, 32


@pytest.fixture(scope="module")
def reference():
    generator = torch.Generator().manual_seed(5)
    return {
        "latents": torch.randn(1, 4, FRAMES, 8, 8, generator=generator),
        "prompt_embeds": torch.randn(1, 77, 32, generator=generator),
        "row": {"num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "source_path": "ref.mp4", "source_sha256": "0" * 64, "train_prompt": "a ball rolls"},
    }


@pytest.mark.parametrize(
    "switches",
    [
        {"gradient_checkpointing": False, "mixed_precision": "no", "compile": False},
        {"gradient_checkpointing": True, "mixed_precision": "bf16", "compile": False},
    ],
)
def test_the_manifest_records_the_memory_and_speed_switches(tiny_backbone, reference, tmp_path, switches):
    config = TrainingConfig(steps=1, learning_rate=1e-3, checkpoint_every=0, progress_bar=False, **switches)
    artifact, result = learn_motion(
        tiny_backbone, "motion_embeddings", {"blocks": "deep"}, config,
        {"latents": reference["latents"], "prompt_embeds": reference["prompt_embeds"]}, reference["row"],
    )
    expected = {**switches, "compiled": False}
    assert {key: artifact.manifest["train"][key] for key in expected} == expected
    assert result.compiled is False
    save_motion_artifact(tmp_path / "motion", artifact)
    on_disk = json.loads((tmp_path / "motion" / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert {key: on_disk["train"][key] for key in expected} == expected
    assert load_motion_artifact(tmp_path / "motion").manifest["train"] == on_disk["train"]


def scaler_after_steps(growth_interval=2):
    """A CPU GradScaler after a few steps, one of them overflowing: scale backed off, tracker part-way."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_factor=4.0, backoff_factor=0.25, growth_interval=growth_interval)
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    for value in (1.0, float("inf"), 1.0):
        optimizer.zero_grad()
        scaler.scale((parameter * value).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
    return scaler, parameter, optimizer


def test_grad_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    scaler, parameter, optimizer = scaler_after_steps(growth_interval=3)
    saved = scaler.state_dict()
    assert saved["scale"] == 2.0**10 * 0.25 and saved["_growth_tracker"] == 1  # it did back off and count
    path = tmp_path / "checkpoint.safetensors"
    generator = torch.Generator().manual_seed(0)
    save_checkpoint(path, "run", 3, weights=parameter_weights([parameter]), optimizer=optimizer, generator=generator,
                    loss_history=[1.0, 2.0, 3.0], scaler=scaler)

    fresh = torch.amp.GradScaler("cpu")  # built with the defaults, as a resumed run builds it
    fresh_parameter = torch.nn.Parameter(torch.zeros(3))
    fresh_optimizer = torch.optim.SGD([fresh_parameter], lr=0.1)
    resumed = load_checkpoint(path, "run", weights=parameter_weights([fresh_parameter]), optimizer=fresh_optimizer,
                              generator=torch.Generator(), scaler=fresh)
    assert resumed.step == 3 and resumed.loss_history == [1.0, 2.0, 3.0] and fresh.state_dict() == saved

    # and the restored scaler goes on exactly like the original: grows after growth_interval clean steps
    for resumed in (scaler, fresh):
        p = torch.nn.Parameter(torch.ones(3))
        o = torch.optim.SGD([p], lr=0.1)
        for _ in range(2):
            o.zero_grad()
            resumed.scale(p.sum()).backward()
            resumed.step(o)
            resumed.update()
    assert fresh.state_dict() == scaler.state_dict() and scaler.get_scale() == 2.0**10


def test_grad_scaler_helpers_without_a_scaler_or_without_saved_state(tmp_path, caplog):
    assert grad_scaler_state(None) == ({}, {})
    assert grad_scaler_state(torch.amp.GradScaler("cpu", enabled=False)) == ({}, {})
    scaler, _, _ = scaler_after_steps()
    tensors, metadata = grad_scaler_state(scaler)
    assert tensors[GRAD_SCALER_SCALE].dtype == torch.float64 and all(isinstance(v, str) for v in metadata.values())
    assert restore_grad_scaler(None, tensors, metadata) is False

    # a checkpoint made without a scaler (bf16 / float32 runs, or before the state was saved)
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, "run", 1, weights=parameter_weights([parameter]), optimizer=optimizer, generator=torch.Generator(), loss_history=[1.0])
    from safetensors.torch import load_file

    assert not any(key.startswith("grad_scaler") for key in load_file(str(path)))
    fresh = torch.amp.GradScaler("cpu", init_scale=8.0)
    with caplog.at_level(logging.WARNING, logger="motiontune.training.checkpoint"):
        resumed = load_checkpoint(path, "run", weights=parameter_weights([parameter]), optimizer=optimizer, generator=torch.Generator(), scaler=fresh)
        assert resumed.step == 1
    assert "holds no GradScaler state" in caplog.text
    assert fresh.get_scale() == 8.0
