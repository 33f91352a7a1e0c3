"""The AnimateDiff layout (UNetMotionModel) at the published configurations, on the meta device, and on the tiny one.

Facts (the expected numbers below are counted by hand from them, not by the code under test):

- Stable Diffusion 1.5 ``unet/config.json`` (``SD15_UNET_CONFIG``): 4 down blocks of channels 320, 640, 1280, 1280,
  the first three with cross-attention (``CrossAttnDownBlock2D``), the last without (``DownBlock2D``);
  ``layers_per_block`` 2 (so 3 layers per up block); up blocks ``UpBlock2D`` then three ``CrossAttnUpBlock2D``;
  one spatial transformer block per attention (``transformer_layers_per_block`` 1).
- The motion adapters' ``config.json``: ``motion_layers_per_block`` 2 (one motion module per resnet of the SD
  UNet: 2 per down block, 3 per up block), one temporal transformer block per module, and
  ``use_motion_mid_block`` true for ``guoyww/animatediff-motion-adapter-v1-5-2`` (AnimateDiff v2: a mid-block
  motion module), false for ``-v1-5-3`` (v3: none).
- Down block i works at latent stride 2**i (its downsampler comes last), up block i at 2**(3 - i), the mid block
  at 8.
"""

import pytest
import torch

from motiontune.backbone.layout import ATTENTION_KINDS, AnimateDiffLayout, layout_class, layout_for
from motiontune.methods.artifact_size import (
    ANIMATEDIFF_V1_5_2_ADAPTER_CONFIG,
    ANIMATEDIFF_V1_5_3_ADAPTER_CONFIG,
    ANIMATEDIFF_V2,
    ANIMATEDIFF_V3,
    SD15_UNET_CONFIG,
    Architecture,
    meta_unet,
    unet_parameter_count,
)

ADAPTERS = {"v1-5-2": ANIMATEDIFF_V1_5_2_ADAPTER_CONFIG, "v1-5-3": ANIMATEDIFF_V1_5_3_ADAPTER_CONFIG}
HAS_MID_MOTION = {"v1-5-2": True, "v1-5-3": False}

# (channels, latent stride) of each temporal block in forward order, by hand from the configs.
DOWN = [(320, 1)] * 2 + [(640, 2)] * 2 + [(1280, 4)] * 2 + [(1280, 8)] * 2
MID = [(1280, 8)]
UP = [(1280, 8)] * 3 + [(1280, 4)] * 3 + [(640, 2)] * 3 + [(320, 1)] * 3
# deep: the 1280-channel down/up motion modules (down blocks 2, 3; up blocks 0, 1).
DEEP_PATHS = [
    f"{block}.motion_modules.{index}.transformer_blocks.0"
    for block, count in (("down_blocks.2", 2), ("down_blocks.3", 2), ("up_blocks.0", 3), ("up_blocks.1", 3))
    for index in range(count)
]


@pytest.fixture(scope="module", params=list(ADAPTERS))
def animatediff(request):
    """(adapter name, UNetMotionModel on the meta device), built as loading SD 1.5 + backbone.motion_adapter does."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    with torch.device("meta"):  # the architecture only: no 1.3B-parameter allocation
        unet = UNetMotionModel.from_unet2d(
            UNet2DConditionModel(**SD15_UNET_CONFIG), MotionAdapter(**ADAPTERS[request.param]), load_weights=False
        )
    return request.param, unet


def test_layout_for_finds_the_animatediff_family(animatediff):
    _, unet = animatediff
    layout = layout_for(unet)
    assert isinstance(layout, AnimateDiffLayout) and layout_class("UNetMotionModel") is AnimateDiffLayout
    assert layout.text_embeddings_per_frame is True and layout.input_temporal is None


def test_temporal_blocks_sections_channels_and_strides(animatediff):
    name, unet = animatediff
    blocks = layout_for(unet).temporal_blocks()
    expected = DOWN + (MID if HAS_MID_MOTION[name] else []) + UP
    assert len(blocks) == (21 if HAS_MID_MOTION[name] else 20)
    assert [(b.channels, b.latent_stride) for b in blocks] == expected
    sections = [b.section for b in blocks]
    assert sections == ["down"] * 8 + (["mid"] if HAS_MID_MOTION[name] else []) + ["up"] * 12
    assert all(".motion_modules." in b.path and b.path.endswith(".transformer_blocks.0") for b in blocks)
    # 512x512 video -> 64x64 latent: the feature maps the value embeddings cover.
    assert {b.latent_stride: b.feature_size(64, 64) for b in blocks} == {1: (64, 64), 2: (32, 32), 4: (16, 16), 8: (8, 8)}


def test_presets_all_and_deep(animatediff):
    _, unet = animatediff
    layout = layout_for(unet)
    every = layout.select_temporal_blocks("all")
    assert len(every) == 20 and {b.section for b in every} == {"down", "up"}  # 8 down + 12 up, the mid one left out
    deep = layout.select_temporal_blocks("deep")
    assert [b.path for b in deep] == DEEP_PATHS and {b.channels for b in deep} == {1280}
    assert [b.path for b in layout.select_temporal_blocks(["up_blocks.3"])] == [
        f"up_blocks.3.motion_modules.{i}.transformer_blocks.0" for i in range(3)
    ]


def test_attention_layers_by_kind(animatediff):
    name, unet = animatediff
    layout = layout_for(unet)
    layers = layout.attention_layers()
    by_kind = {kind: [layer for layer in layers if layer.kind == kind] for kind in ATTENTION_KINDS}
    # 16 spatial transformers (down 3 x 2, mid 1, up 3 x 3): attn1 self, attn2 cross; two temporal attentions
    # (attn1, attn2 over frames) per motion module.
    modules = 21 if HAS_MID_MOTION[name] else 20
    assert (len(by_kind["self"]), len(by_kind["cross"]), len(by_kind["temporal"])) == (16, 16, 2 * modules)
    assert {(layer.channels, layer.latent_stride) for layer in by_kind["cross"]} == {(320, 1), (640, 2), (1280, 4), (1280, 8)}
    assert {layer.section for layer in by_kind["cross"] if layer.latent_stride == 8} == {"mid"}
    assert {layer.path.rsplit(".", 1)[1] for layer in by_kind["temporal"]} == {"attn1", "attn2"}
    named = dict(unet.named_modules())
    assert all(layer.channels == named[layer.path].query_dim for layer in layers)


def test_projections_lora_targets_checkpoint_slots_and_block_order(animatediff):
    name, unet = animatediff
    layout = layout_for(unet)
    modules = 21 if HAS_MID_MOTION[name] else 20
    # No input temporal transformer: include_input_temporal changes nothing.
    for include in (False, True):
        assert len(layout.temporal_attention_projections(("to_q", "to_k", "to_v"), include)) == modules * 2 * 3
    spatial = layout.lora_target_modules(("attn1", "ff"), (), False)
    temporal = layout.lora_target_modules((), ("attn1", "attn2", "ff"), True)
    assert len(spatial) == 16 * (4 + 2) and len(temporal) == modules * (4 + 4 + 2)
    assert len(layout.transformer_block_paths(temporal)) == modules
    assert not set(layout.transformer_block_paths(spatial)) & set(layout.transformer_block_paths(temporal))
    # Checkpointed layers, counted from the configs: down 0-2: 2 resnets + 2 attentions + 2 motion modules + 1
    # downsampler (7 each), down 3: 2 resnets + 2 motion modules (4); mid: 2 resnets + 1 attention (+ 1 motion
    # module with v1-5-2); up 0: 3 resnets + 3 motion modules + 1 upsampler (7), up 1-2: 3 + 3 + 3 + 1 (10 each),
    # up 3: 3 resnets + 3 attentions + 3 motion modules (9).
    assert len(layout.checkpoint_slots()) == 3 * 7 + 4 + (4 if HAS_MID_MOTION[name] else 3) + 7 + 2 * 10 + 9
    order = layout.block_order()
    assert order == [f"down_blocks.{i}" for i in range(4)] + ["mid_block"] + [f"up_blocks.{i}" for i in range(4)]
    cross = layout.attention_layers(("cross",))
    assert layout.last_block_of([layer.path for layer in cross if layer.section == "down"]) == "down_blocks.2"
    assert layout.last_block_of([b.path for b in layout.select_temporal_blocks("deep")]) == "up_blocks.1"


def test_parameter_counts_of_the_published_configs():
    from diffusers import MotionAdapter, UNet2DConditionModel

    with torch.device("meta"):
        sd15 = UNet2DConditionModel(**SD15_UNET_CONFIG)
        v3_adapter = MotionAdapter(**ANIMATEDIFF_V1_5_3_ADAPTER_CONFIG)
        v2_adapter = MotionAdapter(**ANIMATEDIFF_V1_5_2_ADAPTER_CONFIG)
    # SD 1.5 model card: an 860M-parameter UNet.
    assert round(sum(p.numel() for p in sd15.parameters()) / 1e6) == 860
    # guoyww/animatediff-motion-adapter-v1-5-3 lists diffusion_pytorch_model.safetensors (float32) at 1.67 GB: the
    # state dict of its config (positional-encoding buffers included); a mid-block module would make it 1.82 GB.
    def state_gb(adapter):
        return round(sum(t.numel() * t.element_size() for t in adapter.state_dict().values()) / 1e9, 2)

    assert state_gb(v3_adapter) == 1.67 and state_gb(v2_adapter) == 1.82
    # The UNetMotionModel holds the SD UNet's parameters plus the adapter's motion modules.
    for architecture, adapter in ((ANIMATEDIFF_V2, v2_adapter), (ANIMATEDIFF_V3, v3_adapter)):
        assert unet_parameter_count(architecture) == sum(p.numel() for p in sd15.parameters()) + sum(
            p.numel() for p in adapter.parameters()
        )


def test_the_tiny_animatediff_layout_and_its_meta_twin(tiny_animatediff):
    """The committed tiny AnimateDiff (conf tiny_animatediff: channels 32, 64, 64, one layer per block, a mid-block
    motion module): 3 down + 1 mid + 3 x 2 up motion modules."""
    unet = tiny_animatediff.unet
    layout = layout_for(unet)
    blocks = layout.temporal_blocks()
    assert [(b.section, b.channels, b.latent_stride) for b in blocks] == (
        [("down", 32, 1), ("down", 64, 2), ("down", 64, 4), ("mid", 64, 4)]
        + [("up", 64, 4)] * 2 + [("up", 64, 2)] * 2 + [("up", 32, 1)] * 2
    )
    assert len(layout.select_temporal_blocks("all")) == 9
    assert [b.path for b in layout.select_temporal_blocks("deep")] == [
        "down_blocks.1.motion_modules.0.transformer_blocks.0", "down_blocks.2.motion_modules.0.transformer_blocks.0",
        "up_blocks.0.motion_modules.0.transformer_blocks.0", "up_blocks.0.motion_modules.1.transformer_blocks.0",
        "up_blocks.1.motion_modules.0.transformer_blocks.0", "up_blocks.1.motion_modules.1.transformer_blocks.0",
    ]
    kinds = [layer.kind for layer in layout.attention_layers()]
    # spatial transformers: down 2 x 1, mid 1, up 2 x 2 = 7; temporal: 10 modules x 2.
    assert (kinds.count("self"), kinds.count("cross"), kinds.count("temporal")) == (7, 7, 20)
    # The meta-device build from its folder's config is the same architecture.
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "data/06_models/backbones/tiny-animatediff"
    twin = meta_unet(Architecture.from_folder(folder, 8, 32, 32))
    assert type(twin).__name__ == "UNetMotionModel"
    assert [(n, tuple(p.shape)) for n, p in twin.named_parameters()] == [(n, tuple(p.shape)) for n, p in unet.named_parameters()]
    assert layout_for(twin).temporal_blocks() == blocks
