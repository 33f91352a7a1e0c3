"""AnimateDiff backbones load through the same code as ZeroScope: a saved AnimateDiffPipeline folder, or a Stable
Diffusion checkpoint plus a motion adapter; a missing, superfluous or mismatched adapter is a clear error."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from motiontune.backbone.layout import AnimateDiffLayout, layout_for
from motiontune.backbone.loading import BackboneError, BackboneSettings, load_backbone
from motiontune.backbone.tiny import TinyBackboneSpec, build_tiny_backbone, save_stable_diffusion_and_adapter


@pytest.fixture(scope="module")
def sd_and_adapter(tmp_path_factory, tiny_animatediff):
    """The tiny AnimateDiff pipeline saved apart, as SD 1.5 and its motion adapter are published."""
    from diffusers import AnimateDiffPipeline

    pipeline = AnimateDiffPipeline.from_pretrained(tiny_animatediff.id_or_path)
    return save_stable_diffusion_and_adapter(pipeline, tmp_path_factory.mktemp("sd_adapter"))


def test_a_saved_animatediff_pipeline_loads_as_the_animatediff_family(tiny_animatediff):
    assert type(tiny_animatediff.unet).__name__ == "UNetMotionModel"
    assert isinstance(layout_for(tiny_animatediff.unet), AnimateDiffLayout)
    assert tiny_animatediff.family == "animatediff"
    assert not any(p.requires_grad for p in tiny_animatediff.unet.parameters())
    fingerprint = tiny_animatediff.fingerprint()
    assert fingerprint["family"] == "animatediff" and fingerprint["motion_adapter"] is None
    # AnimateDiff's scheduler (the diffusers AnimateDiff docs): linear betas, linspace spacing.
    assert tiny_animatediff.scheduler_config["beta_schedule"] == "linear"
    assert tiny_animatediff.scheduler_config["timestep_spacing"] == "linspace"


def test_stable_diffusion_plus_motion_adapter_is_the_same_model_as_the_saved_pipeline(sd_and_adapter, tiny_animatediff):
    sd_dir, adapter_dir = sd_and_adapter
    assert json.loads((sd_dir / "unet" / "config.json").read_text())["_class_name"] == "UNet2DConditionModel"
    combined = BackboneSettings.from_params(
        {"pretrained_model": str(sd_dir), "motion_adapter": str(adapter_dir), "device": "cpu"}
    ).load()
    assert type(combined.unet).__name__ == "UNetMotionModel" and combined.family == "animatediff"
    assert combined.fingerprint()["motion_adapter"] == str(adapter_dir)
    assert combined.fingerprint()["unet_config_sha256"] == tiny_animatediff.fingerprint()["unet_config_sha256"]
    sample = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = layout_for(combined.unet).predict_noise(sample, torch.tensor([500]), text)
        saved = layout_for(tiny_animatediff.unet).predict_noise(sample, torch.tensor([500]), text)
    # Same weights, same config: the same prediction up to float summation order.
    torch.testing.assert_close(ours, saved, atol=1e-5, rtol=0.0)


def test_a_stable_diffusion_checkpoint_without_an_adapter_names_what_to_set(sd_and_adapter):
    with pytest.raises(BackboneError, match=r"Stable Diffusion image model .*set backbone.motion_adapter"):
        load_backbone(sd_and_adapter[0], device="cpu")


def test_an_adapter_on_a_video_model_is_refused_naming_both(sd_and_adapter, tiny_animatediff, project_root):
    adapter = str(sd_and_adapter[1])
    with pytest.raises(BackboneError, match=r"motion_adapter '.*motion-adapter'.*tiny-t2v' is already a ZeroScope"):
        load_backbone(project_root / "data/06_models/backbones/tiny-t2v", device="cpu", motion_adapter=adapter)
    with pytest.raises(BackboneError, match=r"tiny-animatediff' is already a.*AnimateDiff"):
        load_backbone(tiny_animatediff.id_or_path, device="cpu", motion_adapter=adapter)


def test_a_mismatched_adapter_is_refused_naming_both(sd_and_adapter, tmp_path):
    from diffusers import MotionAdapter

    MotionAdapter(block_out_channels=(32, 64, 128), motion_layers_per_block=1, motion_num_attention_heads=4).save_pretrained(tmp_path / "wide")
    MotionAdapter(block_out_channels=(32, 64, 64), motion_layers_per_block=2, motion_num_attention_heads=4).save_pretrained(tmp_path / "deep")
    with pytest.raises(BackboneError, match=r"'.*wide' does not fit backbone '.*stable-diffusion'.*\[32, 64, 64\] channels.*\[32, 64, 128\]"):
        load_backbone(sd_and_adapter[0], device="cpu", motion_adapter=tmp_path / "wide")
    with pytest.raises(BackboneError, match=r"'.*deep' does not fit.*\[1, 1, 1\] layers per block.*\[2, 2, 2\]"):
        load_backbone(sd_and_adapter[0], device="cpu", motion_adapter=tmp_path / "deep")
    with pytest.raises(BackboneError, match=r"backbone.motion_adapter '.*nowhere': no such folder"):
        load_backbone(sd_and_adapter[0], device="cpu", motion_adapter=tmp_path / "nowhere")


def test_committed_tiny_animatediff_is_what_the_builder_makes(tmp_path, project_root):
    config = yaml.safe_load((project_root / "conf/base/parameters_backbone.yml").read_text())
    build_tiny_backbone(tmp_path, TinyBackboneSpec.from_dict(config["tiny_animatediff"], "tiny_animatediff"))
    committed = project_root / "data/06_models/backbones/tiny-animatediff"
    tables_seen = 0
    for part in ("unet/diffusion_pytorch_model.safetensors", "motion_adapter/diffusion_pytorch_model.safetensors",
                 "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        built, shipped = load_file(tmp_path / part), load_file(committed / part)
        assert built.keys() == shipped.keys()
        # The motion modules' sinusoidal position tables are computed, not drawn: sin/exp round their last bit
        # differently on CPUs with other vector units (seen: 9.5e-07 between two Xeons, same torch 2.13.0), so
        # they match to float32 rounding; everything drawn from the seeded generator matches bit for bit.
        computed = {k for k in built if k.endswith(".pos_embed.pe")}
        tables_seen += len(computed)
        assert all(torch.equal(built[k], shipped[k]) for k in built.keys() - computed), part
        assert all(torch.allclose(built[k], shipped[k], rtol=0, atol=1e-5) for k in computed), part
    assert tables_seen, "the motion modules carry no position table any more: revisit the tolerance above"
    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == "AnimateDiffPipeline"
