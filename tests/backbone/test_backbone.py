import json

import pytest
import torch
import yaml

from motiontune.backbone.loading import BackboneError, load_backbone
from motiontune.backbone.layout import select_temporal_blocks, temporal_blocks
from motiontune.backbone.tiny import TinyBackboneSpec, build_tiny_backbone

# ZeroScope v2 576w's unet/config.json architecture keys (public model card config).
ZEROSCOPE_UNET = {
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "attention_head_dim": 64,
    "in_channels": 4,
    "out_channels": 4,
    "norm_num_groups": 32,
}


@pytest.fixture(scope="module")
def zeroscope_unet():
    from diffusers import UNet3DConditionModel

    with torch.device("meta"):  # the architecture only: no 1.4B-parameter allocation
        return UNet3DConditionModel(**ZEROSCOPE_UNET)


def test_zeroscope_presets_match_the_papers(zeroscope_unet):
    # seed 004 A.1: 15 embeddings (down + up), 5 for the 1280-channel blocks.
    assert len(select_temporal_blocks(zeroscope_unet, "all")) == 15
    deep = select_temporal_blocks(zeroscope_unet, "deep")
    assert len(deep) == 5 and {b.channels for b in deep} == {1280}
    # transformer_in + 6 down + 1 mid + 9 up
    assert len(temporal_blocks(zeroscope_unet)) == 17


def test_zeroscope_feature_sizes_at_576x320(zeroscope_unet):
    # 1280-channel blocks work at H/32 x W/32 pixels (seed 004 A.1): 320x576 -> 10 x 18.
    latent = (320 // 8, 576 // 8)
    for block in select_temporal_blocks(zeroscope_unet, "deep"):
        assert block.feature_size(*latent) == (10, 18)


def test_explicit_block_list_and_bad_values(tiny_backbone):
    chosen = select_temporal_blocks(tiny_backbone.unet, ["up_blocks.1"])
    assert [b.path for b in chosen] == [
        "up_blocks.1.temp_attentions.0.transformer_blocks.0",
        "up_blocks.1.temp_attentions.1.transformer_blocks.0",
    ]
    with pytest.raises(ValueError, match="unknown preset 'shallow'"):
        select_temporal_blocks(tiny_backbone.unet, "shallow")
    with pytest.raises(ValueError, match="'down_blocks.9' matches no temporal transformer"):
        select_temporal_blocks(tiny_backbone.unet, ["down_blocks.9"])


def test_tiny_backbone_is_a_frozen_diffusers_t2v_model(tiny_backbone):
    assert type(tiny_backbone.unet).__name__ == "UNet3DConditionModel"
    assert type(tiny_backbone.vae).__name__ == "AutoencoderKL"
    assert type(tiny_backbone.text_encoder).__name__ == "CLIPTextModel"
    assert not any(p.requires_grad for p in tiny_backbone.unet.parameters())
    assert tiny_backbone.vae_scale_factor == 4
    ids = tiny_backbone.tokenizer("a red ball rolling to the right").input_ids
    tokens = tiny_backbone.tokenizer.convert_ids_to_tokens(ids)
    assert tokens[1:-1] == ["a</w>", "red</w>", "ball</w>", "rolling</w>", "to</w>", "the</w>", "right</w>"]
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"


def test_committed_backbone_is_what_the_builder_makes(tmp_path, project_root):
    config = yaml.safe_load((project_root / "conf/base/parameters_backbone.yml").read_text())
    build_tiny_backbone(tmp_path, TinyBackboneSpec.from_dict(config["tiny_backbone"]))
    committed = project_root / "data/06_models/backbones/tiny-t2v"
    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        from safetensors.torch import load_file

        built, shipped = load_file(tmp_path / part), load_file(committed / part)
        assert built.keys() == shipped.keys()
        assert all(torch.equal(built[k], shipped[k]) for k in built), part
    assert json.loads((tmp_path / "unet/config.json").read_text())["block_out_channels"] == [32, 64, 64]


def test_unknown_spec_key_is_rejected():
    with pytest.raises(ValueError, match=r"tiny_backbone\.channels: unknown key"):
        TinyBackboneSpec.from_dict({"channels": 3})


def test_bad_backbone_location_gives_a_clear_error(tmp_path):
    with pytest.raises(BackboneError, match="no such folder, and not a hub id"):
        load_backbone(tmp_path / "nowhere", device="cpu")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "unet").mkdir()
    with pytest.raises(BackboneError, match="missing subfolders \\['vae', 'text_encoder', 'tokenizer', 'scheduler'\\]"):
        load_backbone(tmp_path / "half", device="cpu")
    with pytest.raises(BackboneError, match="backbone.dtype: 'float8'"):
        load_backbone("data/06_models/backbones/tiny-t2v", device="cpu", dtype="float8")
