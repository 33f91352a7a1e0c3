"""MotionMatcher: LoRA trained by matching the frozen model's attention maps, with no second UNet."""

import pytest
import torch
from diffusers import DDPMScheduler
from peft import get_peft_model_state_dict

from motiontune.methods.artifact import load_motion_artifact, save_motion_artifact
from motiontune.methods.attention_maps import (
    AttentionMapProcessor,
    attention_maps_recorded,
    attention_layers,
    motion_attention_features,
    select_feature_layers,
)
from motiontune.training.customize import applied_motion, learn_motion
from motiontune.methods.base import TrainingBatch, build_method, recommended_training
from motiontune.methods.motion_matcher import MotionMatcherMethod
from motiontune.sampling.ddim import ddim_step
from motiontune.training.loop import TrainingConfig, train_motion

from motion_helpers import FRAMES, PIXELS, quick_config as quick, random_reference, unet_output

pytestmark = pytest.mark.usefixtures("restore_unet")


@pytest.fixture(scope="module")
def reference():
    return random_reference(4)


def structure(unet):
    """Everything `applied` or training may touch: module objects, parameter objects and values, processors."""
    return (
        dict(unet.named_modules()),
        {name: (parameter, parameter.detach().clone()) for name, parameter in unet.named_parameters()},
        {name: type(module.processor) for name, module in unet.named_modules() if hasattr(module, "set_processor")},
    )


def assert_restored(unet, before):
    modules, parameters, processors = structure(unet)
    assert modules == before[0]
    assert parameters.keys() == before[1].keys()
    assert all(parameters[name][0] is parameter and torch.equal(parameters[name][1], value) for name, (parameter, value) in before[1].items())
    assert processors == before[2]
    assert not hasattr(unet, "peft_config")


def batch_for(backbone, method, reference, seed=0):
    scheduler = DDPMScheduler.from_config(backbone.scheduler_config)
    generator = torch.Generator().manual_seed(seed)
    latents = reference["latents"]
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = method.sample_timesteps(1000, 1, generator)
    return TrainingBatch(latents, noise, timesteps, scheduler.add_noise(latents, noise, timesteps), noise, reference["prompt_embeds"], scheduler, generator, 0)


def test_attention_maps_have_the_documented_shapes_and_are_distributions(tiny_backbone, reference):
    unet = tiny_backbone.unet
    layers = select_feature_layers(unet)  # tiny backbone: down_blocks.1 (latent / 2) is the coarsest with both kinds
    assert [layer.path for layer in layers] == [
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2",
        "down_blocks.1.temp_attentions.0.transformer_blocks.0.attn1",
        "down_blocks.1.temp_attentions.0.transformer_blocks.0.attn2",
    ]
    features = motion_attention_features(unet, layers, reference["latents"], torch.tensor([600]), reference["prompt_embeds"])
    assert features.cross_attention.shape == (1, FRAMES, 4 * 4, 77)  # (B, F, h*w, L) at latent 8x8 / 2
    assert features.temporal_attention.shape == (1, 4 * 4, FRAMES, FRAMES)  # (B, h*w, F, F)
    assert torch.allclose(features.cross_attention.sum(-1), torch.ones(1, FRAMES, 16), atol=1e-5)
    assert torch.allclose(features.temporal_attention.sum(-1), torch.ones(1, 16, FRAMES), atol=1e-5)
    with pytest.raises(ValueError, match=r"feature_stride: 4 is not .*; choose one of \[1, 2\]"):
        select_feature_layers(unet, ("down",), latent_stride=4)
    assert {layer.latent_stride for layer in select_feature_layers(unet, ("up",))} == {2}


def test_the_recording_processor_computes_the_same_attention(tiny_backbone, reference):
    unet = tiny_backbone.unet
    plain = unet_output(tiny_backbone, reference, 600)
    before = structure(unet)
    layers = attention_layers(unet)
    with attention_maps_recorded(unet, layers) as store:
        assert all(isinstance(unet.get_submodule(layer.path).processor, AttentionMapProcessor) for layer in layers)
        recorded = unet_output(tiny_backbone, reference, 600)
    assert set(store.maps) == {layer.path for layer in layers}
    assert torch.allclose(recorded, plain, atol=1e-5)
    assert_restored(unet, before)


def test_ddim_step_with_the_true_noise_lands_on_the_forward_process():
    scheduler = DDPMScheduler.from_config({"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012})
    alphas = scheduler.alphas_cumprod
    clean, noise = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    t, previous = torch.tensor([700, 520]), torch.tensor([699, 500])
    noisy = scheduler.add_noise(clean, noise, t)
    expected = scheduler.add_noise(clean, noise, previous)  # same eps, earlier timestep
    assert torch.allclose(ddim_step(alphas, noisy, noise, t, previous), expected, atol=1e-5)
    velocity = scheduler.get_velocity(clean, noise, t)
    assert torch.allclose(ddim_step(alphas, noisy, velocity, t, previous, "v_prediction"), expected, atol=1e-5)


def test_only_the_lora_trains_and_no_second_unet_is_held(tiny_backbone, reference):
    unet = tiny_backbone.unet
    base_storage = len({parameter.data_ptr() for parameter in unet.parameters()})
    method = MotionMatcherMethod(tiny_backbone, FRAMES, PIXELS, PIXELS)
    lora = method.trainable_parameters()
    layers = {key.rsplit(".lora_", 1)[0] for key in method.artifact_tensors()}
    # public code targets: spatial attn1 + ff (not the cross-attention), temporal attn1 + attn2 + ff, transformer_in too
    assert not any(".attentions." in name and ".attn2." in name for name in layers)
    assert "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q" in layers
    assert "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2" in layers
    assert "transformer_in.transformer_blocks.0.attn2.to_out.0" in layers
    assert len(lora) == 2 * len(layers) and all(p.shape[0] == 32 or p.shape[1] == 32 for p in lora)
    assert all(torch.count_nonzero(t) == 0 for k, t in method.artifact_tensors().items() if "lora_B" in k)

    assert not any(p.requires_grad for p in unet.parameters())
    with method.training_context(tiny_backbone):
        assert {id(p) for p in unet.parameters() if p.requires_grad} == {id(p) for p in lora}
        assert len({p.data_ptr() for p in unet.parameters()}) == base_storage + len(lora)
        peft_format = get_peft_model_state_dict(unet, adapter_name="motionmatcher")
        assert peft_format.keys() == method.artifact_tensors().keys()
        with pytest.raises(RuntimeError, match="detach the LoRA first"):
            method.motion_features(tiny_backbone, reference["latents"], torch.tensor([500]), reference["prompt_embeds"])
    assert not any(p.requires_grad for p in unet.parameters())

    before = structure(unet)
    result = train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], quick(learning_rate=1e-2))
    assert len(result.loss_history) == 2 and all(torch.isfinite(torch.tensor(result.loss_history)))
    assert_restored(unet, before)
    assert any(torch.count_nonzero(t) > 0 for k, t in method.artifact_tensors().items() if "lora_B" in k)


class FeatureRecordingMotionMatcher(MotionMatcherMethod):
    def motion_features(self, *args, **kwargs):
        features = super().motion_features(*args, **kwargs)
        self.recorded.append(features)
        return features


def test_gradients_reach_the_lora_only_through_the_predicted_branch(tiny_backbone, reference):
    unet = tiny_backbone.unet
    method = FeatureRecordingMotionMatcher(tiny_backbone, FRAMES, PIXELS, PIXELS, rank=4)
    method.recorded = []
    with torch.no_grad():
        for parameter in method.trainable_parameters():
            parameter.normal_(std=0.05)  # non-zero B so that lora_A gets gradients too
    batch = batch_for(tiny_backbone, method, reference)
    assert 500 <= int(batch.timesteps) < 1000
    loss = method.training_loss(tiny_backbone, batch)
    loss.backward()
    target, predicted = method.recorded
    # the target branch ran without autograd; the predicted branch's maps hang on the LoRA's first forward
    assert not target.cross_attention.requires_grad and not target.temporal_attention.requires_grad
    assert predicted.cross_attention.requires_grad and predicted.temporal_attention.requires_grad
    assert all(p.grad is None for p in unet.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in method.trainable_parameters())
    assert sum(float(p.grad.abs().sum()) for p in method.trainable_parameters()) > 0
    expected = 2000 * (
        torch.nn.functional.mse_loss(predicted.cross_attention, target.cross_attention)
        + torch.nn.functional.mse_loss(predicted.temporal_attention, target.temporal_attention)
    )
    assert torch.allclose(loss, expected)


def test_artifact_round_trip_untrained_identity_and_restoration(tiny_backbone, reference, tmp_path):
    unet = tiny_backbone.unet
    method = MotionMatcherMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, rank=4)
    early, late = unet_output(tiny_backbone, reference, 700), unet_output(tiny_backbone, reference, 300)
    before = structure(unet)
    with MotionMatcherMethod.applied(tiny_backbone.unet, method.artifact_tensors(), {"lora_min_timestep": 0}):
        assert torch.equal(unet_output(tiny_backbone, reference, 700), early)  # zero lora_B: no change
    assert_restored(unet, before)

    artifact, _ = learn_motion(
        tiny_backbone, "motionmatcher", {"rank": 4}, quick(learning_rate=5e-2),
        {"latents": reference["latents"], "prompt_embeds": reference["prompt_embeds"]}, reference["row"],
    )
    config = artifact.manifest["hyperparameters"]["lora_config"]
    assert config["r"] == 4 and config["lora_alpha"] == 4 and config["peft_type"] == "LORA"
    assert artifact.manifest["inference_defaults"]["blend_strength"] == 0.3
    assert all(key.endswith((".lora_A.weight", ".lora_B.weight")) for key in artifact.tensors)
    loaded = load_motion_artifact(save_motion_artifact(tmp_path / "motion", artifact))
    with MotionMatcherMethod.applied(tiny_backbone.unet, artifact.tensors, MotionMatcherMethod.inference_defaults):
        in_memory = unet_output(tiny_backbone, reference, 700)
        below_min_timestep = unet_output(tiny_backbone, reference, 300)
    with applied_motion(tiny_backbone, loaded, {}):
        from_disk = unet_output(tiny_backbone, reference, 700)
    assert torch.equal(in_memory, from_disk)
    assert (in_memory - early).abs().max() > 1e-5
    assert torch.equal(below_min_timestep, late)  # the public inference script: LoRA only at t >= 500
    with applied_motion(tiny_backbone, loaded, {"lora_min_timestep": 0}):
        assert (unet_output(tiny_backbone, reference, 300) - late).abs().max() > 1e-5
    with applied_motion(tiny_backbone, loaded, {"lora_scale": 0.0}):
        assert torch.allclose(unet_output(tiny_backbone, reference, 700), early)
    assert_restored(unet, before)


def test_options_and_recommended_training(tiny_backbone):
    assert isinstance(build_method("motionmatcher", {"rank": 8, "training": {"steps": 5}}, tiny_backbone, FRAMES, PIXELS, PIXELS), MotionMatcherMethod)
    with pytest.raises(ValueError, match=r"spatial_targets: \['attn3'\] are not among"):
        build_method("motionmatcher", {"spatial_targets": ["attn3"]}, tiny_backbone, FRAMES, PIXELS, PIXELS)
    assert recommended_training("motionmatcher") == {"steps": 400, "learning_rate": 5e-4, "weight_decay": 1e-2, "max_grad_norm": None, "simplified_prompt": False}
    assert MotionMatcherMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, min_timestep=500).sample_timesteps(1000, 64, torch.Generator().manual_seed(0)).min() >= 500


@pytest.mark.skipif(
    "gradient_checkpointing" not in TrainingConfig.__dataclass_fields__, reason="the loop has no gradient checkpointing"
)
def test_gradient_checkpointing_trains_identically(tiny_backbone, reference):
    """Checkpointed blocks are recomputed in backward, after the LoRA was detached: results must not change."""
    results = []
    for checkpointing in (False, True):
        method = MotionMatcherMethod(tiny_backbone, FRAMES, PIXELS, PIXELS, rank=4)
        with torch.no_grad():
            for parameter in method.trainable_parameters():
                parameter.normal_(std=0.05, generator=torch.Generator().manual_seed(7))
        config = quick(gradient_checkpointing=checkpointing)
        history = train_motion(method, tiny_backbone, reference["latents"], reference["prompt_embeds"], config).loss_history
        results.append((history, method.artifact_tensors()))
    (plain_history, plain), (checkpointed_history, checkpointed) = results
    assert plain_history == pytest.approx(checkpointed_history, rel=1e-5)
    assert all(torch.allclose(plain[key], checkpointed[key], atol=1e-6) for key in plain)


def test_a_lora_artifact_that_does_not_fit_is_refused_and_changes_nothing(tiny_backbone):
    unet = tiny_backbone.unet
    before = structure(unet)
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    with pytest.raises(ValueError, match=rf"LoRA tensor '{name}.lora_A.weight' has shape \(4, 7\), the layer needs \(4, 32\)"):
        with MotionMatcherMethod.applied(tiny_backbone.unet, {f"{name}.lora_A.weight": torch.zeros(4, 7), f"{name}.lora_B.weight": torch.zeros(32, 4)}, {}):
            pass
    with pytest.raises(ValueError, match="LoRA target 'down_blocks.7.attn1.to_q' is not a Linear layer of this UNet"):
        with MotionMatcherMethod.applied(tiny_backbone.unet, {"down_blocks.7.attn1.to_q.lora_A.weight": torch.zeros(4, 32)}, {}):
            pass
    assert_restored(unet, before)
