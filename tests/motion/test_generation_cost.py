"""Generation with a motion applied costs what the plain backbone costs (issue 7).

A deterministic, structural proxy for speed: during one UNet forward with each method's artifact applied, the
UNet has the plain backbone's module types, calls the same modules the same number of times, runs the same
number of Linear / convolution / attention kernels, and carries at most one extra (per-UNet-call) hook. LoRA
methods get there by fusing ``W + scaling * B @ A`` into swapped-in weights; the fused output must match the
unfused peft adapter's, and the backbone's weights must come back bitwise.
"""

from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode

from motiontune.methods.lora import LoraAdapter, attached_from_timestep
from motiontune.methods.base import build_method, method_class

from motion_helpers import FRAMES, PIXELS

pytestmark = pytest.mark.usefixtures("restore_unet")

# The kernels whose count is the cost of a pass (elementwise additions are not: Motion Embeddings add one).
HEAVY_OPS = {"linear", "conv2d", "conv3d", "scaled_dot_product_attention", "matmul", "bmm", "baddbmm", "einsum", "softmax"}
ALL_METHODS = ("motion_embeddings", "vmc", "motionmatcher", "motiondirector")


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(11)
    return torch.randn(2, 4, FRAMES, 8, 8, generator=generator), torch.randn(2, 77, 32, generator=generator)


def trained_like_tensors(backbone, name):
    """An artifact's tensors for ``name`` on the tiny backbone, with random non-zero values (LoRA B included)."""
    options = {"rank": 4} if name in ("motionmatcher", "motiondirector") else {}
    method = build_method(name, options, backbone, FRAMES, PIXELS, PIXELS)
    generator = torch.Generator().manual_seed(3)
    tensors = {}
    for key, tensor in method.artifact_tensors().items():
        noise = torch.randn(tensor.shape, generator=generator) * 0.05
        tensors[key] = (noise if key.endswith("lora_B.weight") else tensor + noise).clone()
    return tensors


def unet_output(backbone, inputs, timestep):
    latents, prompt_embeds = inputs
    with torch.no_grad():
        return backbone.unet(latents, torch.tensor(timestep), encoder_hidden_states=prompt_embeds).sample


def weights(unet):
    return {name: (parameter, parameter.detach().clone()) for name, parameter in unet.named_parameters()}


def assert_weights_bitwise(unet, before):
    now = dict(unet.named_parameters())
    assert now.keys() == before.keys()
    for name, (parameter, value) in before.items():
        assert now[name] is parameter and torch.equal(parameter, value), name


def module_types(unet):
    return {name: type(module) for name, module in unet.named_modules()}


def hook_count(unet):
    return sum(
        len(module._forward_pre_hooks) + len(module._forward_hooks) + len(getattr(module, "_backward_hooks", {}))
        for module in unet.modules()
    )


class _CountOps(TorchFunctionMode):
    def __init__(self, counts):
        super().__init__()
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HEAVY_OPS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def pass_profile(backbone, inputs, timestep):
    """Module calls by type and heavy kernel calls by name during one UNet forward."""
    modules, ops = Counter(), Counter()
    handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda module, args: modules.update([type(module).__name__]))
    try:
        with _CountOps(ops):
            unet_output(backbone, inputs, timestep)
    finally:
        handle.remove()
    return modules, ops


@pytest.mark.parametrize("name", ALL_METHODS)
def test_applied_generation_runs_exactly_the_plain_backbones_work(tiny_backbone, inputs, name):
    unet = tiny_backbone.unet
    tensors = trained_like_tensors(tiny_backbone, name)
    cls = method_class(name)
    timestep = 700  # above MotionMatcher's lora_min_timestep (500): its LoRA acts
    plain_types, plain_hooks = module_types(unet), hook_count(unet)
    plain_modules, plain_ops = pass_profile(tiny_backbone, inputs, timestep)
    plain_output = unet_output(tiny_backbone, inputs, timestep)
    assert plain_ops["linear"] > 0 and plain_ops["scaled_dot_product_attention"] > 0
    before = weights(unet)

    with cls.applied(tiny_backbone.unet, tensors, dict(cls.inference_defaults)):
        applied_modules, applied_ops = pass_profile(tiny_backbone, inputs, timestep)
        assert module_types(unet) == plain_types  # no LoRA layer, no wrapper, no parametrization
        assert not hasattr(unet, "peft_config")
        assert hook_count(unet) - plain_hooks == (1 if name == "motionmatcher" else 0)  # one per UNet call at most
        applied_output = unet_output(tiny_backbone, inputs, timestep)

    assert applied_modules == plain_modules
    assert applied_ops == plain_ops
    assert (applied_output - plain_output).abs().max() > 1e-4  # the motion does act
    assert hook_count(unet) == plain_hooks and module_types(unet) == plain_types
    assert_weights_bitwise(unet, before)


@pytest.mark.parametrize("scale", [1.0, 0.7])
def test_motiondirector_fused_lora_matches_the_unfused_adapter(tiny_backbone, inputs, scale):
    unet = tiny_backbone.unet
    tensors = trained_like_tensors(tiny_backbone, "motiondirector")
    reference = LoraAdapter.from_state_dict(unet, tensors, "unfused_reference")
    reference.requires_grad_(False).eval()
    reference.set_scale(scale)
    plain = unet_output(tiny_backbone, inputs, 400)
    with reference.attached():
        unfused = unet_output(tiny_backbone, inputs, 400)
    before = weights(unet)

    with method_class("motiondirector").applied(tiny_backbone.unet, tensors, {"lora_scale": scale}):
        fused = unet_output(tiny_backbone, inputs, 400)
        # the fused weights are new tensors: the backbone's own weights are untouched even meanwhile
        assert all(torch.equal(parameter, value) for parameter, value in before.values())

    assert (unfused - plain).abs().max() > 1e-3
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=0)
    assert_weights_bitwise(unet, before)


def test_motionmatcher_fused_lora_acts_from_its_timestep_and_matches_the_unfused_adapter(tiny_backbone, inputs):
    unet = tiny_backbone.unet
    tensors = trained_like_tensors(tiny_backbone, "motionmatcher")
    reference = LoraAdapter.from_state_dict(unet, tensors, "unfused_reference")
    reference.requires_grad_(False).eval()
    plain_early, plain_late = unet_output(tiny_backbone, inputs, 700), unet_output(tiny_backbone, inputs, 300)
    with attached_from_timestep(reference, 500):
        unfused_early, unfused_late = unet_output(tiny_backbone, inputs, 700), unet_output(tiny_backbone, inputs, 300)
    assert torch.equal(unfused_late, plain_late) and (unfused_early - plain_early).abs().max() > 1e-3
    before = weights(unet)
    fused_layers = [f"{name}.weight" for name in reference.layers]

    with method_class("motionmatcher").applied(tiny_backbone.unet, tensors, {"lora_min_timestep": 500}):
        early = unet_output(tiny_backbone, inputs, 700)
        in_place_early = {key: unet.get_parameter(key) for key in fused_layers}
        late = unet_output(tiny_backbone, inputs, 300)
        assert all(unet.get_parameter(key) is before[key][0] for key in fused_layers)  # originals back below 500
        again = unet_output(tiny_backbone, inputs, 700)
        # swapped by pointer: the same fused tensors come back, nothing recomputed or copied per call
        assert all(unet.get_parameter(key) is in_place_early[key] for key in fused_layers)

    torch.testing.assert_close(early, unfused_early, atol=1e-5, rtol=0)
    assert torch.equal(again, early)
    assert torch.equal(late, plain_late)
    assert all(in_place_early[key] is not before[key][0] for key in fused_layers)
    assert_weights_bitwise(unet, before)


def test_a_failing_pass_still_restores_the_original_weights(tiny_backbone, inputs):
    unet = tiny_backbone.unet
    tensors = trained_like_tensors(tiny_backbone, "motionmatcher")
    before, hooks = weights(unet), hook_count(unet)
    with pytest.raises(RuntimeError, match="boom"):
        with method_class("motionmatcher").applied(tiny_backbone.unet, tensors, {"lora_min_timestep": 500}):
            unet_output(tiny_backbone, inputs, 700)
            raise RuntimeError("boom")
    assert hook_count(unet) == hooks
    assert_weights_bitwise(unet, before)
