"""The patching primitives put back exactly what was there; LoRA deltas come from peft's get_delta_weight."""

import pytest
import torch
from torch import nn

from motiontune.backbone.layout import layout_for
from motiontune.backbone.patching import (
    ForwardStoppedError,
    ModuleSwap,
    ParameterSwap,
    forward_stopped_after,
    from_timestep,
    processors_installed,
)
from motiontune.methods.lora import LoraAdapter, LoraTargets

pytestmark = pytest.mark.usefixtures("restore_unet")


def test_parameter_and_module_swaps_restore_the_objects(tiny_backbone):
    unet = tiny_backbone.unet
    key = "conv_out.weight"
    original = unet.conv_out.weight
    swap = ParameterSwap(unet, {key: nn.Parameter(torch.zeros_like(original))}, "test")
    with swap.swapped():
        assert unet.conv_out.weight is not original and not unet.conv_out.weight.any()
    assert unet.conv_out.weight is original
    with pytest.raises(ValueError, match="test: the backbone has no parameter 'conv_out.nothing'"):
        ParameterSwap(unet, {"conv_out.nothing": nn.Parameter(torch.zeros(1))}, "test")

    replacement = nn.Identity()
    conv = unet.conv_out
    with pytest.raises(RuntimeError, match="boom"), ModuleSwap([(unet, "conv_out", replacement)]).swapped():
        assert unet.conv_out is replacement
        raise RuntimeError("boom")
    assert unet.conv_out is conv


def test_processors_come_back_even_when_installing_fails(tiny_backbone):
    unet = tiny_backbone.unet
    layers = layout_for(unet).attention_layers(("temporal",))
    before = {layer.path: unet.get_submodule(layer.path).processor for layer in layers}
    marker = object()
    with pytest.raises(ValueError, match="no module 'nowhere'"):
        with processors_installed(unet, {layers[0].path: marker, "nowhere": marker}):
            pass
    assert {layer.path: unet.get_submodule(layer.path).processor for layer in layers} == before


def test_timestep_gate_and_early_stop(tiny_backbone):
    unet = tiny_backbone.unet
    calls = []
    sample = torch.randn(1, unet.config.in_channels, 2, 8, 8)
    text = torch.randn(1, 5, unet.config.cross_attention_dim)
    layout = layout_for(unet)
    with torch.no_grad(), from_timestep(unet, 500, lambda: calls.append("on"), lambda: calls.append("off")):
        layout.predict_noise(sample, torch.tensor([700]), text)
        layout.predict_noise(sample, torch.tensor([300]), text)
    assert calls == ["on", "off", "off"]
    assert not unet._forward_pre_hooks
    with torch.no_grad(), pytest.raises(ForwardStoppedError), forward_stopped_after(unet, layout.block_order()[1]):
        layout.predict_noise(sample, torch.tensor([700]), text)
    assert all(not module._forward_hooks for module in unet.modules())


def test_fused_lora_deltas_are_peft_s_and_bitwise_what_the_hand_formula_gave(tiny_backbone):
    unet = tiny_backbone.unet
    targets = LoraTargets(spatial=("attn1", "ff"), temporal=("attn1", "attn2"))
    adapter = LoraAdapter(unet, targets.module_names(unet), 4, "patching_test", lora_alpha=2.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for layer in adapter.layers.values():
            layer.lora_B["patching_test"].weight.normal_()
    adapter.set_scale(0.7)
    fused = adapter.fused_weights()
    for name, layer in adapter.layers.items():
        weight = layer.get_base_layer().weight
        down = layer.lora_A["patching_test"].weight.to(device=weight.device, dtype=torch.float32)
        up = layer.lora_B["patching_test"].weight.to(device=weight.device, dtype=torch.float32)
        by_hand = (weight.float() + (up @ down) * float(layer.scaling["patching_test"])).to(weight.dtype)
        assert torch.equal(fused[f"{name}.weight"], by_hand), name
