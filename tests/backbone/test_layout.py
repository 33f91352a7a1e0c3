"""The backbone layout answers every structural question on the tiny backbone and on ZeroScope's architecture."""

import pytest
import torch
from torch import nn

from motiontune.backbone.layout import (
    TemporalBlock,
    ATTENTION_KINDS,
    BackboneLayout,
    LAYOUTS,
    UNet3DLayout,
    layout_class,
    layout_for,
    register_layout,
)
from motiontune.methods.artifact_size import ZEROSCOPE_UNET_CONFIG


@pytest.fixture(scope="module")
def zeroscope_unet():
    from diffusers import UNet3DConditionModel

    with torch.device("meta"):  # the architecture only: no 1.4B-parameter allocation
        return UNet3DConditionModel(**ZEROSCOPE_UNET_CONFIG)


def test_layout_for_finds_the_unet3d_family(tiny_backbone, zeroscope_unet):
    assert isinstance(layout_for(tiny_backbone.unet), UNet3DLayout)
    assert isinstance(layout_for(zeroscope_unet), UNet3DLayout)
    assert layout_class("UNet3DConditionModel") is UNet3DLayout
    assert layout_for(zeroscope_unet).text_embeddings_per_frame is False
    with pytest.raises(ValueError, match="no backbone layout for a Linear"):
        layout_for(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no backbone layout for 'UNet2DConditionModel'"):
        layout_class("UNet2DConditionModel")


def test_zeroscope_attention_layers_by_kind(zeroscope_unet):
    layout = layout_for(zeroscope_unet)
    layers = layout.attention_layers()
    by_kind = {kind: [layer for layer in layers if layer.kind == kind] for kind in ATTENTION_KINDS}
    # 16 spatial transformers (down 3x2, mid 1, up 3x3) with one block each: attn1 self, attn2 cross;
    # 17 temporal transformers (transformer_in + 6 down + 1 mid + 9 up), two temporal attentions each.
    assert (len(by_kind["self"]), len(by_kind["cross"]), len(by_kind["temporal"])) == (16, 16, 34)
    assert {layer.path.rsplit(".", 1)[1] for layer in by_kind["self"]} == {"attn1"}
    assert {layer.path.rsplit(".", 1)[1] for layer in by_kind["cross"]} == {"attn2"}
    # Channels and strides: 320 at latent / 1, 640 at / 2, 1280 at / 4 and / 8 (the mid block).
    assert {(layer.channels, layer.latent_stride) for layer in by_kind["cross"]} == {(320, 1), (640, 2), (1280, 4), (1280, 8)}
    assert {layer.section for layer in by_kind["cross"] if layer.latent_stride == 8} == {"mid"}
    modules = dict(zeroscope_unet.named_modules())
    assert all(layer.channels == modules[layer.path].query_dim for layer in layers)
    assert layout.attention_layers(("cross", "temporal")) == [layer for layer in layers if layer.kind != "self"]
    with pytest.raises(ValueError, match=r"\['spatial'\] are not among"):
        layout.attention_layers(("spatial",))


def test_zeroscope_temporal_blocks_agree_with_their_attentions(zeroscope_unet):
    layout = layout_for(zeroscope_unet)
    blocks = layout.temporal_blocks()
    assert len(blocks) == 17 and [b.section for b in blocks].count("in") == 1
    temporal = {layer.path: layer for layer in layout.attention_layers(("temporal",))}
    for block in blocks:
        for name in layout.temporal_attention_names:
            layer = temporal[layout.temporal_attention_path(block.path, name)]
            assert (layer.section, layer.latent_stride, layer.channels) == (block.section, block.latent_stride, block.channels)
    projections = layout.temporal_attention_projections(("to_q", "to_k", "to_v"), include_input_temporal=False)
    assert len(projections) == 16 * 2 * 3
    assert len(layout.temporal_attention_projections(("to_q",), include_input_temporal=True)) == 17 * 2


def test_zeroscope_lora_targets_checkpoint_slots_and_block_order(zeroscope_unet):
    layout = layout_for(zeroscope_unet)
    spatial = layout.lora_target_modules(("attn1", "ff"), (), False)
    temporal = layout.lora_target_modules((), ("attn1", "attn2", "ff"), True)
    assert len(spatial) == 16 * (4 + 2) and len(temporal) == 17 * (4 + 4 + 2)
    assert len(layout.lora_target_modules((), ("attn1",), False)) == 16 * 4
    assert len(layout.transformer_block_paths(temporal)) == 17
    assert not set(layout.transformer_block_paths(spatial)) & set(layout.transformer_block_paths(temporal))
    # Every resnet, temporal conv, transformer and resampler of the 4 down, 1 mid and 4 up blocks.
    slots = layout.checkpoint_slots()
    expected = sum(
        len(getattr(block, name))
        for block in [*zeroscope_unet.down_blocks, zeroscope_unet.mid_block, *zeroscope_unet.up_blocks]
        for name in UNet3DLayout.BLOCK_LAYER_LISTS
        if getattr(block, name, None) is not None
    )
    assert len(slots) == expected
    order = layout.block_order()
    assert order[0] == "transformer_in" and len(order) == 1 + 4 + 1 + 4
    cross = layout.attention_layers(("cross",))
    assert layout.last_block_of([layer.path for layer in cross if layer.section == "down"]) == "down_blocks.2"
    assert all(layout.top_level_block(layer.path) in order for layer in layout.attention_layers())


def test_predict_noise_is_the_plain_unet_call(tiny_backbone):
    unet = tiny_backbone.unet
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, unet.config.in_channels, 2, 8, 8, generator=generator)
    text = torch.randn(1, 5, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        direct = unet(sample, torch.tensor([500]), encoder_hidden_states=text).sample
        through = layout_for(unet).predict_noise(sample, torch.tensor([500]), text)
    assert torch.equal(direct, through)


def test_a_second_family_is_one_layout_class():
    """A family is one class answering the layout's questions; the shared helpers (presets, ...) then work on it,
    and a class that leaves a question out is refused when it is used."""
    class ToyUNet(nn.Module):
        pass

    class ToyLayout(BackboneLayout):
        family = "toy"
        unet_class_name = "ToyUNet"

        def temporal_blocks(self):
            return [TemporalBlock("down.0.motion.0", "down", 64, 1), TemporalBlock("up.0.motion.0", "up", 128, 2)]

        def attention_layers(self, kinds=("self", "cross", "temporal")):
            return []

        def lora_target_pattern(self, spatial, temporal, include_input_temporal):
            return r"(?!)"

        def transformer_block_of(self, module_path):
            return None

        def checkpoint_slots(self):
            return []

        def block_order(self):
            return ["down", "up"]

        def top_level_block(self, path):
            return path.split(".")[0]

        def forward(self, sample, timesteps, text_embeddings):
            return sample

    register_layout(ToyLayout)
    try:
        layout = layout_for(ToyUNet())
        assert isinstance(layout, ToyLayout)
        assert [block.path for block in layout.select_temporal_blocks("deep")] == ["up.0.motion.0"]  # the widest
    finally:
        LAYOUTS.remove(ToyLayout)
    with pytest.raises(ValueError):
        layout_for(ToyUNet())

    class IncompleteLayout(BackboneLayout):
        unet_class_name = "ToyUNet"

    with pytest.raises(TypeError, match="abstract"):
        IncompleteLayout(ToyUNet())
