"""MotionDirector: spatial LoRA on single frames, temporal LoRA with the debiased loss; temporal LoRA at inference."""

import pytest
import torch
from diffusers import DDPMScheduler

from motiontune.methods.artifact import load_motion_artifact, save_motion_artifact
from motiontune.training.customize import applied_motion, learn_motion
from motiontune.methods.losses import debiased_temporal_loss
from motiontune.methods.base import TrainingBatch, build_method, recommended_training
from motiontune.methods.motion_director import MotionDirectorMethod
from motiontune.training.loop import TrainingConfig, train_motion

from motion_helpers import FRAMES, PIXELS, quick_config as quick, random_reference, unet_output

pytestmark = pytest.mark.usefixtures("restore_unet")


@pytest.fixture(scope="module")
def reference():
    return random_reference(5)


def structure(unet):
    return (
        dict(unet.named_modules()),
        {name: (parameter, parameter.detach().clone()) for name, parameter in unet.named_parameters()},
    )


def assert_restored(unet, before):
    modules, parameters = structure(unet)
    assert modules == before[0]
    assert parameters.keys() == before[1].keys()
    assert all(parameters[name][0] is parameter and torch.equal(parameters[name][1], value) for name, (parameter, value) in before[1].items())
    assert not hasattr(unet, "peft_config")


def batch_for(backbone, reference, seed):
    scheduler = DDPMScheduler.from_config(backbone.scheduler_config)
    generator = torch.Generator().manual_seed(seed)
    latents = reference["latents"]
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.tensor([450])
    return TrainingBatch(latents, noise, timesteps, scheduler.add_noise(latents, noise, timesteps), noise, reference["prompt_embeds"], scheduler, generator, 0)


def prepared(backbone, **options):
    method = MotionDirectorMethod(backbone, FRAMES, PIXELS, PIXELS, rank=4, **options)
    with torch.no_grad():
        for parameter in method.trainable_parameters():
            parameter.normal_(std=0.05)  # non-zero B so that every LoRA tensor gets gradients
    return method


def test_trainable_parameters_are_the_two_loras_on_the_public_code_targets(tiny_backbone, reference):
    unet = tiny_backbone.unet
    method = MotionDirectorMethod(tiny_backbone, FRAMES, PIXELS, PIXELS)
    spatial = set(method.spatial.layers)
    temporal = set(method.temporal.layers)
    assert spatial and all(".attentions." in name and (".attn1." in name or ".ff." in name) for name in spatial)
    assert temporal and all((".temp_attentions." in name or name.startswith("transformer_in.")) for name in temporal)
    assert any(".attn2." in name for name in temporal) and any(".ff." in name for name in temporal)
    trainable = method.trainable_parameters()
    assert {id(p) for p in trainable} == {id(p) for p in method.spatial.parameters() + method.temporal.parameters()}
    assert all(32 in p.shape for p in trainable)
    assert not any(p.requires_grad for p in unet.parameters())

    seen = []
    hook = unet.register_forward_pre_hook(
        lambda module, args: seen.append((args[0].shape[2], method.spatial.is_attached, method.temporal.is_attached,
                                         {id(p) for p in unet.parameters() if p.requires_grad}))
    )
    try:
        before = structure(unet)
        result = train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], quick(), None)
    finally:
        hook.remove()
    assert len(result.loss_history) == 2 and all(torch.isfinite(torch.tensor(result.loss_history)))
    assert_restored(unet, before)
    spatial_ids = {id(p) for p in method.spatial.parameters()}
    temporal_ids = {id(p) for p in method.temporal.parameters()}
    for frames, spatial_on, temporal_on, requires_grad in seen:
        if frames == 1:  # the spatial path: one frame, spatial LoRA only, and it is what trains
            assert spatial_on and not temporal_on and requires_grad == spatial_ids
        else:  # the temporal path: the temporal LoRA trains; a spatial LoRA present acts without gradients
            assert frames == FRAMES and temporal_on and requires_grad == temporal_ids
    assert any(frames == 1 for frames, *_ in seen)


def test_spatial_lora_gets_gradients_from_the_single_frame_path_only(tiny_backbone, reference):
    method = prepared(tiny_backbone, spatial_skip_probability=0.0)
    batch = batch_for(tiny_backbone, reference, seed=1)
    method.training_loss(tiny_backbone, batch).backward()
    step_grads = [p.grad.clone() for p in method.spatial.parameters()]
    temporal_grads = [p.grad.clone() for p in method.temporal.parameters()]
    assert all(torch.isfinite(g).all() for g in step_grads + temporal_grads)
    assert all(p.grad is None for p in tiny_backbone.unet.parameters())

    # Replay the step's draws: the skip decision, then the frame, then the anchor of the debiased loss.
    for parameter in method.trainable_parameters():
        parameter.grad = None
    replay = torch.Generator().manual_seed(1)
    torch.randn(batch.latents.shape, generator=replay)
    torch.rand((), generator=replay)
    frame = int(torch.randint(0, FRAMES, (1,), generator=replay))
    method.spatial_loss(tiny_backbone, batch, frame).backward()
    assert all(torch.allclose(p.grad, g) for p, g in zip(method.spatial.parameters(), step_grads))
    assert all(p.grad is None for p in method.temporal.parameters())


def test_temporal_loss_is_mse_plus_debiased_term_and_skipping_leaves_the_spatial_lora_alone(tiny_backbone, reference):
    method = prepared(tiny_backbone, spatial_skip_probability=1.0)
    batch = batch_for(tiny_backbone, reference, seed=2)
    loss = method.training_loss(tiny_backbone, batch)
    loss.backward()
    assert all(p.grad is None for p in method.spatial.parameters())
    assert all(p.grad is not None for p in method.temporal.parameters())
    replay = torch.Generator().manual_seed(2)
    torch.randn(batch.latents.shape, generator=replay)
    torch.rand((), generator=replay)
    with method.temporal.attached(), torch.no_grad():
        prediction = tiny_backbone.unet(batch.noisy_latents, batch.timesteps, encoder_hidden_states=batch.prompt_embeds).sample
    assert torch.allclose(loss, debiased_temporal_loss(prediction, batch.target, generator=replay))


def test_artifact_is_the_temporal_lora_round_trip_and_restoration(tiny_backbone, reference, tmp_path):
    unet = tiny_backbone.unet
    plain = unet_output(tiny_backbone, reference)
    untrained = MotionDirectorMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, rank=4)
    before = structure(unet)
    with MotionDirectorMethod.applied(tiny_backbone.unet, untrained.artifact_tensors(), {}):
        assert torch.equal(unet_output(tiny_backbone, reference), plain)
    assert_restored(unet, before)

    artifact, _ = learn_motion(
        tiny_backbone, "motiondirector", {"rank": 4}, quick(learning_rate=5e-2),
        {"latents": reference["latents"], "prompt_embeds": reference["prompt_embeds"]}, reference["row"],
    )
    assert artifact.tensors and not any(".attentions." in key for key in artifact.tensors)  # no spatial LoRA
    assert artifact.manifest["inference_defaults"] == {
        "noise_init": "blend", "blend_strength": 0.5, "lora_scale": 1.0, "guidance_scale": 10.0, "steps": 50,
        "inversion_model": "base", "inversion_prompt": "empty", "inversion_steps": None,  # public MotionDirector_train.py
    }
    assert artifact.manifest["hyperparameters"]["lora_config"]["r"] == 4
    loaded = load_motion_artifact(save_motion_artifact(tmp_path / "motion", artifact))
    with MotionDirectorMethod.applied(tiny_backbone.unet, artifact.tensors, {}):
        in_memory = unet_output(tiny_backbone, reference)
    with applied_motion(tiny_backbone, loaded, {}):
        from_disk = unet_output(tiny_backbone, reference)
    assert torch.equal(in_memory, from_disk)
    assert (in_memory - plain).abs().max() > 1e-5
    with applied_motion(tiny_backbone, loaded, {"lora_scale": 0.0}):
        assert torch.allclose(unet_output(tiny_backbone, reference), plain)
    assert_restored(unet, before)
    with pytest.raises(ValueError, match="LoRA tensor 'down_blocks.0.x' is not in peft format"):
        with MotionDirectorMethod.applied(tiny_backbone.unet, {"down_blocks.0.x": torch.zeros(1)}, {}):
            pass
    assert_restored(unet, before)


def test_options_and_recommended_training(tiny_backbone):
    assert isinstance(build_method("motiondirector", {"rank": 8}, tiny_backbone, FRAMES, PIXELS, PIXELS), MotionDirectorMethod)
    with pytest.raises(ValueError, match="spatial_skip_probability: must be in"):
        build_method("motiondirector", {"spatial_skip_probability": 2}, tiny_backbone, FRAMES, PIXELS, PIXELS)
    assert recommended_training("motiondirector") == {"steps": 150, "learning_rate": 5e-4, "weight_decay": 1e-2, "max_grad_norm": None, "simplified_prompt": False}


@pytest.mark.skipif(
    "gradient_checkpointing" not in TrainingConfig.__dataclass_fields__, reason="the loop has no gradient checkpointing"
)
def test_gradient_checkpointing_trains_identically(tiny_backbone, reference):
    """Checkpointed blocks are recomputed in backward, after the LoRA was detached: results must not change."""
    results = []
    for checkpointing in (False, True):
        method = MotionDirectorMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, rank=4, spatial_skip_probability=0.0)
        with torch.no_grad():
            for parameter in method.trainable_parameters():
                parameter.normal_(std=0.05, generator=torch.Generator().manual_seed(7))
        config = quick(gradient_checkpointing=checkpointing)
        history = train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], config).loss_history
        results.append((history, method.artifact_tensors()))
    (plain_history, plain), (checkpointed_history, checkpointed) = results
    assert plain_history == pytest.approx(checkpointed_history, rel=1e-5)
    assert all(torch.allclose(plain[key], checkpointed[key], atol=1e-6) for key in plain)
