"""All four methods on AnimateDiff's motion modules, through the layout layer: what each trains sits where its
paper puts it (facts of the tiny AnimateDiff's config, written down: 3 down blocks with 1 motion module each,
3 up blocks with 2, one mid-block motion module; 7 spatial transformers), its artifact applies for generation,
changes the video, and leaves the UNet as it was."""

from __future__ import annotations

import re

import pytest
import torch

from motiontune.methods.base import build_method
from motiontune.training.customize import learn_motion
from motiontune.training.loop import TrainingConfig

from motion_helpers import FRAMES, PIXELS, assert_motion_changes_the_video_and_not_the_unet, quick_method_options

MOTION_BLOCK = re.compile(r"^(down_blocks\.\d|up_blocks\.\d|mid_block)\.motion_modules\.\d\.transformer_blocks\.0$")
DOWN_UP_MOTION_BLOCKS = {
    "down_blocks.0.motion_modules.0", "down_blocks.1.motion_modules.0", "down_blocks.2.motion_modules.0",
    *(f"up_blocks.{i}.motion_modules.{j}" for i in range(3) for j in range(2)),
}
# The 64-channel ones (block_out_channels [32, 64, 64]: down 1, 2 and up 0, 1).
DEEP_MOTION_BLOCKS = {"down_blocks.1.motion_modules.0", "down_blocks.2.motion_modules.0",
                      *(f"up_blocks.{i}.motion_modules.{j}" for i in range(2) for j in range(2))}
ALL_MOTION_BLOCKS = DOWN_UP_MOTION_BLOCKS | {"mid_block.motion_modules.0"}


def _blocks_of(keys, marker: str) -> set[str]:
    return {key.split(".transformer_blocks.")[0] for key in keys if marker in key}


@pytest.mark.parametrize(("preset", "expected"), [("all", DOWN_UP_MOTION_BLOCKS), ("deep", DEEP_MOTION_BLOCKS)])
def test_motion_embeddings_sit_in_the_motion_modules_temporal_attentions(tiny_animatediff, preset, expected):
    method = build_method("motion_embeddings", {"blocks": preset}, tiny_animatediff, FRAMES, PIXELS, PIXELS)
    keys = set(method.artifact_tensors())
    assert _blocks_of(keys, ".motion_modules.") == expected
    assert all(".motion_modules." in key for key in keys)
    # One query/key embedding per block (frames x channels) and one value per temporal attention (attn1, attn2).
    query_keys = {key for key in keys if key.endswith(".query_key")}
    assert len(query_keys) == len(expected)
    widths = {key.split(".transformer_blocks.")[0]: method.artifact_tensors()[key].shape for key in query_keys}
    assert all(shape[-1] == (32 if block.startswith(("down_blocks.0", "up_blocks.2")) else 64) for block, shape in widths.items())


def test_vmc_trains_the_motion_modules_attention_query_key_value(tiny_animatediff):
    method = build_method("vmc", {}, tiny_animatediff, FRAMES, PIXELS, PIXELS)
    keys = set(method.artifact_tensors())
    expected = {f"{block}.transformer_blocks.0.{attention}.{projection}.weight"
                for block in ALL_MOTION_BLOCKS for attention in ("attn1", "attn2") for projection in ("to_q", "to_k", "to_v")}
    assert keys == expected
    assert len(method.trainable_parameters()) == len(expected) == 10 * 2 * 3


def test_motiondirector_temporal_lora_on_motion_modules_and_spatial_lora_on_spatial_transformers(tiny_animatediff):
    method = build_method("motiondirector", {"rank": 4}, tiny_animatediff, FRAMES, PIXELS, PIXELS)
    temporal = method.temporal.target_modules
    spatial = method.spatial.target_modules
    assert _blocks_of(temporal, ".motion_modules.") == ALL_MOTION_BLOCKS and all(".motion_modules." in name for name in temporal)
    # attn1, attn2 (both attend over frames) and the feed-forward: 4 + 4 + 2 Linear layers per motion module.
    assert len(temporal) == len(ALL_MOTION_BLOCKS) * 10
    # Spatial: attn1 and ff of the 7 spatial transformers (down 0, 1; mid; up 1, 2 x 2), never the motion modules.
    assert all(".attentions." in name and ".attn2." not in name for name in spatial) and len(spatial) == 7 * 6
    # The artifact is the temporal LoRA only.
    assert set(method.artifact_tensors()) == {f"{name}.lora_{side}.weight" for name in temporal for side in "AB"}


def test_motionmatcher_matches_spatial_cross_attention_and_motion_module_maps(tiny_animatediff):
    method = build_method("motionmatcher", {"rank": 4}, tiny_animatediff, FRAMES, PIXELS, PIXELS)
    layers = method.feature_layers
    cross = [layer.path for layer in layers if layer.kind == "cross"]
    temporal = [layer.path for layer in layers if layer.kind == "temporal"]
    # The coarsest down resolution with both kinds: down block 1 (latent / 2); down block 2 has no cross-attention.
    assert cross == ["down_blocks.1.attentions.0.transformer_blocks.0.attn2"]
    assert temporal == [f"down_blocks.1.motion_modules.0.transformer_blocks.0.{name}" for name in ("attn1", "attn2")]


@pytest.mark.parametrize("name", ["motion_embeddings", "vmc", "motiondirector", "motionmatcher"])
def test_each_methods_artifact_changes_the_animatediff_video_and_leaves_the_unet_unchanged(tiny_animatediff, name):
    generator = torch.Generator().manual_seed(3)
    features = {"latents": torch.randn(1, 4, FRAMES, 8, 8, generator=generator), "prompt_embeds": torch.randn(1, 77, 32, generator=generator)}
    row = {"num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "source_path": "ref.mp4", "source_sha256": "0" * 64, "train_prompt": "a ball"}
    before = {key: value.clone() for key, value in tiny_animatediff.unet.state_dict().items()}
    artifact, _ = learn_motion(tiny_animatediff, name, quick_method_options(name), TrainingConfig(steps=3, learning_rate=5e-2, checkpoint_every=0, progress_bar=False), features, row)
    assert artifact.manifest["backbone"]["family"] == "animatediff"
    assert_motion_changes_the_video_and_not_the_unet(tiny_animatediff, artifact, "a red ball", before)
