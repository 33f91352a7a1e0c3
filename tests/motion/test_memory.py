"""Memory and speed switches of the training loop: gradient checkpointing, mixed precision, compile fallback,
the frozen-weights check, and the motion-embedding processor's optimisation (bitwise identical to before)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from motiontune.methods.attention import MotionEmbeddingAttnProcessor
from motiontune.training.guards import frozen_parameters_with_grad
from motiontune.training.memory import CheckpointedBlock, gradient_checkpointing
from motiontune.methods.base import TrainingBatch
from motiontune.methods.motion_embeddings import MotionEmbeddingsMethod
from motiontune.training.loop import TrainingConfig, _run_fingerprint, train_motion


# Small videos keep these tests fast: 4 frames of 32x32 pixels = 8x8 latents on the tiny backbone.
FRAMES, SIZE = 4, 32


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(3)
    return {
        "latents": torch.randn(1, 4, FRAMES, SIZE // 4, SIZE // 4, generator=generator),
        "prompt_embeds": torch.randn(1, 77, 32, generator=generator),
    }


def quick(**overrides):
    values = {"steps": 2, "learning_rate": 0.05, "checkpoint_every": 0, "progress_bar": False}
    values.update(overrides)
    return TrainingConfig(**values)


def embeddings_method(backbone, blocks="all"):
    method = MotionEmbeddingsMethod(backbone, FRAMES, SIZE, SIZE, blocks=blocks)
    with torch.no_grad():  # non-zero embeddings, so the value path matters
        generator = torch.Generator().manual_seed(5)
        for parameter in method.trainable_parameters():
            parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return method


def loss_and_grads(backbone, inputs, checkpointing):
    from diffusers import DDPMScheduler

    method = embeddings_method(backbone)
    scheduler = DDPMScheduler.from_config(backbone.scheduler_config)
    noise = torch.randn(inputs["latents"].shape, generator=torch.Generator().manual_seed(7))
    timesteps = torch.tensor([400])
    batch = TrainingBatch(
        latents=inputs["latents"], noise=noise, timesteps=timesteps,
        noisy_latents=scheduler.add_noise(inputs["latents"], noise, timesteps), target=noise,
        prompt_embeds=inputs["prompt_embeds"], scheduler=scheduler, generator=torch.Generator().manual_seed(0), step=0,
    )
    with gradient_checkpointing(backbone.unet, checkpointing):
        loss = method.training_loss(backbone, batch)
        # backward after the method's context has been left, as in the training loop
        loss.backward()
    return loss.detach(), [p.grad.clone() for p in method.trainable_parameters()]


def test_gradient_checkpointing_changes_no_result(tiny_backbone, inputs):
    loss_off, grads_off = loss_and_grads(tiny_backbone, inputs, checkpointing=False)
    loss_on, grads_on = loss_and_grads(tiny_backbone, inputs, checkpointing=True)
    assert torch.allclose(loss_on, loss_off, rtol=1e-6, atol=0)
    assert len(grads_on) == len(grads_off) == 18  # query_key + attn1 and attn2 values for each of the tiny UNet's 6 down/up blocks
    assert all(g.abs().sum() > 0 for g in grads_off)
    for on, off in zip(grads_on, grads_off):
        torch.testing.assert_close(on, off, rtol=1e-5, atol=1e-7)


def test_the_training_loop_gives_the_same_embeddings_with_checkpointing(tiny_backbone, inputs):
    learned = {}
    for checkpointing in (False, True):
        method = MotionEmbeddingsMethod(tiny_backbone, FRAMES, SIZE, SIZE, blocks="all")
        result = train_motion(method, tiny_backbone, inputs["latents"], inputs["prompt_embeds"], quick(gradient_checkpointing=checkpointing))
        learned[checkpointing] = (result.loss_history, method.artifact_tensors())
    assert learned[True][0] == pytest.approx(learned[False][0], rel=1e-6)
    for key, tensor in learned[False][1].items():
        torch.testing.assert_close(learned[True][1][key], tensor, rtol=1e-5, atol=1e-6)


def grads_through_swapped_layers(backbone, inputs, checkpointing):
    """Methods change the UNet only for their forward pass (VMC swaps parameters in, LoRA swaps layers in,
    frozen passes run with requires_grad off); backward comes after the swap is undone."""
    unet = backbone.unet
    attention = unet.down_blocks[1].attentions[0].transformer_blocks[0].attn1
    temporal = unet.up_blocks[1].temp_attentions[0].transformer_blocks[0].attn2
    torch.manual_seed(0)
    swapped_weight = torch.nn.Parameter(temporal.to_v.weight.detach() * 1.5)
    swapped_layer = torch.nn.Linear(attention.to_q.in_features, attention.to_q.out_features, bias=True)
    original_weight, original_layer = temporal.to_v.weight, attention.to_q
    with gradient_checkpointing(unet, checkpointing):
        temporal.to_v.weight, attention.to_q = swapped_weight, swapped_layer
        try:
            prediction = unet(inputs["latents"], torch.tensor([250]), encoder_hidden_states=inputs["prompt_embeds"]).sample
        finally:
            temporal.to_v.weight, attention.to_q = original_weight, original_layer
        prediction.square().mean().backward()
    assert temporal.to_v.weight is original_weight and attention.to_q is original_layer
    return [swapped_weight.grad, swapped_layer.weight.grad, swapped_layer.bias.grad]


def test_recomputation_sees_the_layers_the_forward_pass_saw(tiny_backbone, inputs):
    without = grads_through_swapped_layers(tiny_backbone, inputs, checkpointing=False)
    with_checkpointing = grads_through_swapped_layers(tiny_backbone, inputs, checkpointing=True)
    for on, off in zip(with_checkpointing, without):
        assert off is not None and off.abs().sum() > 0
        torch.testing.assert_close(on, off, rtol=1e-5, atol=1e-8)


def test_checkpointing_leaves_paths_and_keys_and_restores_the_unet_exactly(tiny_backbone, inputs):
    import re

    unet = tiny_backbone.unet
    keys = list(unet.state_dict())
    names = [name for name, _ in unet.named_modules()]
    modules = list(unet.modules())
    # every layer of every block is checkpointed on its own: resnets, temporal convs, transformers, resamplers
    layer = re.compile(r"(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.(resnets|temp_convs|attentions|temp_attentions|downsamplers|upsamplers)\.\d+")
    expected = [name for name in names if layer.fullmatch(name)]
    originals = dict(unet.named_modules())
    assert len(expected) > 7  # finer than the 7 blocks
    with torch.no_grad():
        before = unet(inputs["latents"], torch.tensor([300]), encoder_hidden_states=inputs["prompt_embeds"]).sample
    with gradient_checkpointing(unet) as wrapped:
        assert sorted(wrapped) == sorted(expected)
        current = dict(unet.named_modules())
        assert all(isinstance(current[name], CheckpointedBlock) and current[name].block is originals[name] for name in expected)
        assert list(unet.state_dict()) == keys and [name for name, _ in unet.named_modules()] == names
        transformer = "down_blocks.0.attentions.0"
        assert current[transformer].proj_in is originals[transformer].proj_in  # attributes come from the wrapped layer
        with gradient_checkpointing(unet) as nested:  # a nested use wraps nothing more
            assert nested == []
        with torch.no_grad():
            during = unet(inputs["latents"], torch.tensor([300]), encoder_hidden_states=inputs["prompt_embeds"]).sample
        assert torch.equal(during, before)
    assert all(a is b for a, b in zip(unet.modules(), modules)) and len(list(unet.modules())) == len(modules)
    assert list(unet.state_dict()) == keys
    # restored even when the body raises
    with pytest.raises(RuntimeError, match="boom"), gradient_checkpointing(unet):
        raise RuntimeError("boom")
    assert all(a is b for a, b in zip(unet.modules(), modules))


def retained_bytes(backbone, inputs, checkpointing):
    """Bytes the autograd graph keeps for backward after one forward: the tensors saved by operations outside
    checkpointed blocks plus the inputs each checkpointed block keeps for its recomputation (unique storages)."""
    storages: dict[int, int] = {}

    def keep(tensor):
        if isinstance(tensor, torch.Tensor):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def block_inputs(module, args, kwargs):
        for value in [*args, *kwargs.values()]:
            for tensor in value if isinstance(value, tuple) else (value,):
                keep(tensor)

    method = embeddings_method(backbone)
    handles = []
    with gradient_checkpointing(backbone.unet, checkpointing), method.training_context(backbone):
        for module in backbone.unet.modules():
            if isinstance(module, CheckpointedBlock):
                handles.append(module.register_forward_pre_hook(block_inputs, with_kwargs=True))
        try:
            with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
                prediction = backbone.unet(inputs["latents"], torch.tensor([500]), encoder_hidden_states=inputs["prompt_embeds"]).sample
        finally:
            for handle in handles:
                handle.remove()
    F.mse_loss(prediction, torch.zeros_like(prediction)).backward()  # the graph is sound in both modes
    return sum(storages.values())


def test_checkpointing_reduces_activation_memory(tiny_backbone, inputs):
    without = retained_bytes(tiny_backbone, inputs, checkpointing=False)
    with_checkpointing = retained_bytes(tiny_backbone, inputs, checkpointing=True)
    assert without > 2**20  # MiBs of activations even on this small input
    assert with_checkpointing < 0.35 * without


def test_bf16_mixed_precision_trains_on_cpu_with_float32_master_weights(tiny_backbone, inputs):
    method = MotionEmbeddingsMethod(tiny_backbone, FRAMES, SIZE, SIZE, blocks="deep")
    seen = []
    handle = tiny_backbone.unet.conv_in.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    try:
        result = train_motion(method, tiny_backbone, inputs["latents"], inputs["prompt_embeds"], quick(mixed_precision="bf16"))
    finally:
        handle.remove()
    assert seen == [torch.bfloat16, torch.bfloat16]  # the forward ran under autocast
    assert all(torch.isfinite(torch.tensor(result.loss_history)))
    assert all(p.dtype == torch.float32 for p in method.trainable_parameters())
    assert all(torch.count_nonzero(t) > 0 for t in method.artifact_tensors().values())
    assert all(p.dtype == torch.float32 for p in tiny_backbone.unet.parameters())
    with torch.no_grad():  # and outside training the UNet runs in float32 again
        assert tiny_backbone.unet(inputs["latents"], torch.tensor([1]), encoder_hidden_states=inputs["prompt_embeds"]).sample.dtype == torch.float32


def test_checkpointing_and_bf16_combine(tiny_backbone, inputs):
    reference = {}
    for checkpointing in (False, True):
        method = MotionEmbeddingsMethod(tiny_backbone, FRAMES, SIZE, SIZE, blocks="all")
        config = quick(steps=1, mixed_precision="bf16", gradient_checkpointing=checkpointing)
        reference[checkpointing] = train_motion(method, tiny_backbone, inputs["latents"], inputs["prompt_embeds"], config).loss_history
    # the recomputation runs under the same autocast state as the forward pass
    assert reference[True] == pytest.approx(reference[False], rel=1e-6)


def test_mixed_precision_settings_are_checked(tiny_backbone, inputs):
    method = MotionEmbeddingsMethod(tiny_backbone, FRAMES, SIZE, SIZE, blocks="deep")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device.*use bf16 or no"):
        train_motion(method, tiny_backbone, inputs["latents"], inputs["prompt_embeds"], quick(mixed_precision="fp16"))
    with pytest.raises(ValueError, match=r"train.mixed_precision: 'fp8' is not one of \['no', 'bf16', 'fp16'\]"):
        TrainingConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match="train.gradient_checkpointing: must be true or false"):
        TrainingConfig(gradient_checkpointing="yes")
    assert TrainingConfig(mixed_precision=False).mixed_precision == "no"  # YAML 1.1 reads a bare `no` as false


def test_conf_documents_the_switches_with_defaults_that_keep_current_behaviour(project_root: Path):
    train = yaml.safe_load((project_root / "conf/base/parameters_train.yml").read_text(encoding="utf-8"))["train"]
    switches = {key: train[key] for key in ("gradient_checkpointing", "mixed_precision", "compile")}
    config = TrainingConfig.from_params(switches)
    assert (config.gradient_checkpointing, config.mixed_precision, config.compile) == (False, "no", False)


def test_execution_switches_do_not_invalidate_a_resumable_checkpoint(tiny_backbone, inputs):
    method = MotionEmbeddingsMethod(tiny_backbone, FRAMES, SIZE, SIZE, blocks="deep")

    def fingerprint(**overrides):
        return _run_fingerprint(method, quick(**overrides), inputs["latents"], inputs["prompt_embeds"])

    assert fingerprint() == fingerprint(gradient_checkpointing=True, compile=True, progress_bar=True)
    assert fingerprint() != fingerprint(mixed_precision="bf16")  # changes the numbers


def test_no_frozen_parameter_holds_a_gradient_after_a_step(tiny_backbone, inputs):
    method = MotionEmbeddingsMethod(tiny_backbone, FRAMES, SIZE, SIZE, blocks="deep")
    train_motion(method, tiny_backbone, inputs["latents"], inputs["prompt_embeds"], quick(steps=1))
    frozen = {"unet": tiny_backbone.unet, "vae": tiny_backbone.vae, "text_encoder": tiny_backbone.text_encoder}
    assert frozen_parameters_with_grad(frozen, method.trainable_parameters()) == []
    assert all(p.grad is not None for p in method.trainable_parameters())


class LeakyMethod(MotionEmbeddingsMethod):
    """A broken method that unfreezes a backbone weight (and leaves it out of its trainable tensors)."""

    def training_loss(self, backbone, batch):
        backbone.unet.conv_out.weight.requires_grad_(True)
        return super().training_loss(backbone, batch)


def test_a_gradient_reaching_a_frozen_weight_stops_training(tiny_backbone, inputs):
    method = LeakyMethod(tiny_backbone, FRAMES, SIZE, SIZE, blocks="deep")
    try:
        with pytest.raises(RuntimeError, match=r"frozen backbone weights received gradients at step 0 \(unet.conv_out.weight\)"):
            train_motion(method, tiny_backbone, inputs["latents"], inputs["prompt_embeds"], quick(steps=1))
    finally:
        tiny_backbone.unet.conv_out.weight.requires_grad_(False)
        tiny_backbone.unet.conv_out.weight.grad = None


def test_a_compile_failure_is_reported_and_training_goes_on_uncompiled(tiny_backbone, inputs, monkeypatch, caplog):
    from torch._dynamo.exc import TorchRuntimeError

    unet = tiny_backbone.unet
    calls = []

    def failing_compiled_call(*args, **kwargs):
        calls.append(1)
        raise TorchRuntimeError("inductor: no C++ compiler")

    monkeypatch.setattr(unet, "compile", lambda **kwargs: unet.__dict__.__setitem__("_compiled_call_impl", failing_compiled_call))
    results = {}
    for compile_ in (False, True):
        method = MotionEmbeddingsMethod(tiny_backbone, FRAMES, SIZE, SIZE, blocks="deep")
        results[compile_] = train_motion(method, tiny_backbone, inputs["latents"], inputs["prompt_embeds"], quick(steps=1, compile=compile_))
    assert calls == [1]
    assert "torch.compile failed (TorchRuntimeError: inductor: no C++ compiler); continuing uncompiled" in caplog.text
    assert results[True].compiled is False and results[True].loss_history == results[False].loss_history
    assert "_compiled_call_impl" not in unet.__dict__


# ---------------------------------------------------------------------------------------------------------
# the processor optimisation: outputs bitwise identical to the implementation before it


@pytest.fixture(scope="module")
def processor_before(load_script):
    """``MotionEmbeddingAttnProcessor`` as it was before the optimisation: the one copy, kept by the benchmark that
    times the two side by side (benchmarks/train_step.py)."""
    return load_script("benchmarks/train_step.py")._LegacyProcessor


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("value_scale", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("layout", ["paper", "2d_query_key", "1d_value", "rescaled_output"])
def test_the_processor_is_bitwise_identical_to_before(tiny_backbone, processor_before, dtype, value_scale, layout, monkeypatch):
    attention = tiny_backbone.unet.down_blocks[0].temp_attentions[0].transformer_blocks[0].attn1
    if layout == "rescaled_output":
        monkeypatch.setattr(attention, "rescale_output_factor", 2.0)
    frames, channels, spatial, batch = 8, 32, 16 * 16, 2
    generator = torch.Generator().manual_seed(11)
    hidden = torch.randn(batch * spatial, frames, channels, generator=generator).to(dtype)
    query_key = torch.randn(spatial if layout == "2d_query_key" else 1, frames, channels, generator=generator)
    value = torch.randn(1 if layout == "1d_value" else spatial, frames, channels, generator=generator)
    # A cast to bfloat16 and back would round the shared backbone's weights for every later test: restore them.
    original = {name: tensor.clone() for name, tensor in attention.state_dict().items()}
    attention.to(dtype)
    try:
        with torch.no_grad():
            before = processor_before(query_key, value, value_scale, "p")(attention, hidden)
            after = MotionEmbeddingAttnProcessor(query_key, value, value_scale, "p")(attention, hidden)
    finally:
        attention.to(next(iter(original.values())).dtype)
        attention.load_state_dict(original)
    assert after.dtype == before.dtype == dtype
    assert torch.equal(after, before)


def test_a_whole_unet_pass_with_motion_applied_is_bitwise_identical_to_before(tiny_backbone, processor_before, inputs):
    from motiontune.methods.embeddings import TEMPORAL_ATTENTIONS

    method = embeddings_method(tiny_backbone)
    modules = dict(tiny_backbone.unet.named_modules())
    sample = torch.cat([inputs["latents"], inputs["latents"].flip(-1)])  # CFG-like batch of 2
    prompts = torch.cat([inputs["prompt_embeds"], torch.zeros_like(inputs["prompt_embeds"])])
    outputs = []
    for processor_class in (processor_before, MotionEmbeddingAttnProcessor):
        originals = {}
        for path, (query_key, values) in method.embeddings.by_block().items():
            for name in TEMPORAL_ATTENTIONS:
                attention = modules[f"{path}.{name}"]
                originals[attention] = attention.processor
                attention.set_processor(processor_class(query_key.detach(), values[name].detach(), 0.7, path))
        try:
            with torch.no_grad():
                outputs.append(tiny_backbone.unet(sample, torch.tensor([600]), encoder_hidden_states=prompts).sample)
        finally:
            for attention, processor in originals.items():
                attention.set_processor(processor)
    assert torch.equal(outputs[0], outputs[1])
