"""Every method on backbones built here with diffusers alone (not by ``motiontune.backbone.tiny``), in shapes the
project's own builder never makes, saved as pipeline folders and loaded through ``load_backbone``:

- a ZeroScope-family ``TextToVideoSDPipeline`` whose VAE downsamples 2x (two blocks: 32 px -> 16x16 latents),
  whose UNet has two blocks of two layers, the first without attention, 48-wide text embeddings, and a
  v-prediction scheduler;
- an ``AnimateDiffPipeline`` whose Stable Diffusion UNet has two blocks of two layers and whose motion adapter has
  no mid-block motion module (as AnimateDiff v3) and a 16-frame position table.

Each method trains, its artifact goes to disk and back, generates with it, changes the video, and leaves the UNet
as it was. A scheduler that predicts the clean sample is refused when the backbone loads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from motiontune.backbone.loading import BackboneError, load_backbone
from motiontune.methods.artifact import load_motion_artifact, save_motion_artifact
from motiontune.training.customize import learn_motion
from motiontune.training.loop import TrainingConfig

from motion_helpers import FRAMES, PIXELS, assert_motion_changes_the_video_and_not_the_unet, quick_method_options

LATENT_PIXELS = PIXELS // 2  # two VAE blocks: one 2x downsampling
TEXT_WIDTH = 48
TOKENIZER = Path(__file__).resolve().parents[2] / "data/06_models/backbones/tiny-t2v/tokenizer"
METHODS = ["motion_embeddings", "vmc", "motiondirector", "motionmatcher"]


def _text_and_vae():
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=TEXT_WIDTH, intermediate_size=96, num_hidden_layers=1,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=TEXT_WIDTH))
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        block_out_channels=(16, 32), latent_channels=4, norm_num_groups=16, sample_size=PIXELS)
    return tokenizer, text_encoder, vae


def _build_unet3d(folder: Path) -> Path:
    from diffusers import DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel

    torch.manual_seed(1)
    tokenizer, text_encoder, vae = _text_and_vae()
    unet = UNet3DConditionModel(
        sample_size=LATENT_PIXELS, down_block_types=("DownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "UpBlock3D"), block_out_channels=(16, 32), layers_per_block=2,
        norm_num_groups=8, cross_attention_dim=TEXT_WIDTH, attention_head_dim=2)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              set_alpha_to_one=False, prediction_type="v_prediction")
    TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler).save_pretrained(folder)
    return folder


def _build_animatediff(folder: Path) -> Path:
    from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter, UNet2DConditionModel

    torch.manual_seed(2)
    tokenizer, text_encoder, vae = _text_and_vae()
    unet = UNet2DConditionModel(
        sample_size=LATENT_PIXELS, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(16, 32), layers_per_block=2,
        norm_num_groups=8, cross_attention_dim=TEXT_WIDTH, attention_head_dim=4)
    adapter = MotionAdapter(block_out_channels=(16, 32), motion_layers_per_block=2, motion_num_attention_heads=2,
                            motion_norm_num_groups=8, motion_max_seq_length=16, use_motion_mid_block=False)
    scheduler = DDIMScheduler(beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1)
    AnimateDiffPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, motion_adapter=adapter,
                        scheduler=scheduler, feature_extractor=None).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def independent_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("independent_backbones")
    return {"unet3d": _build_unet3d(root / "unet3d"), "animatediff": _build_animatediff(root / "animatediff")}


@pytest.fixture(scope="module", params=["unet3d", "animatediff"])
def independent_backbone(request, independent_folders):
    """(the family it was built as, the backbone loaded from its folder)"""
    return request.param, load_backbone(independent_folders[request.param], device="cpu")


def test_the_independent_backbones_load_as_built(independent_backbone):
    family, backbone = independent_backbone
    assert backbone.family == family
    assert type(backbone.unet).__name__ == {"unet3d": "UNet3DConditionModel", "animatediff": "UNetMotionModel"}[family]
    assert backbone.vae_scale_factor == PIXELS // LATENT_PIXELS
    assert backbone.scheduler_config["prediction_type"] == ("v_prediction" if family == "unet3d" else "epsilon")


@pytest.mark.parametrize("name", METHODS)
def test_each_method_trains_reloads_and_generates_on_an_independent_backbone(independent_backbone, name, tmp_path):
    _, backbone = independent_backbone
    generator = torch.Generator().manual_seed(5)
    features = {"latents": torch.randn(1, 4, FRAMES, LATENT_PIXELS, LATENT_PIXELS, generator=generator),
                "prompt_embeds": torch.randn(1, 77, TEXT_WIDTH, generator=generator)}
    row = {"num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "source_path": "ref.mp4", "source_sha256": "0" * 64,
           "train_prompt": "a red ball moving right"}
    before = {key: value.clone() for key, value in backbone.unet.state_dict().items()}
    trained, result = learn_motion(backbone, name, quick_method_options(name), TrainingConfig(steps=2, learning_rate=5e-2, checkpoint_every=0, progress_bar=False), features, row)
    assert result.steps == 2 and np.isfinite(result.loss_history).all() and len(result.loss_history) == 2
    artifact = load_motion_artifact(save_motion_artifact(tmp_path / name, trained))
    assert artifact.tensors.keys() == trained.tensors.keys()
    assert_motion_changes_the_video_and_not_the_unet(backbone, artifact, "a blue square", before)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("prediction_type", "sample", r"prediction_type 'sample' is not supported \(supported: epsilon, v_prediction\)"),
    ("prediction_type", "flow", r"prediction_type 'flow' is not supported \(supported: epsilon, v_prediction\)"),
    ("thresholding", True, r"thresholding \(dynamic thresholding of pixel-space models\) is not supported"),
])
def test_a_scheduler_setting_we_do_not_sample_with_is_refused_when_the_backbone_loads(independent_folders, tmp_path, key, value, message):
    folder = tmp_path / "other-scheduler-setting"
    shutil.copytree(independent_folders["animatediff"], folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, key: value}))
    with pytest.raises(BackboneError, match=r"other-scheduler-setting': its scheduler's " + message):
        load_backbone(folder, device="cpu")


# Stable Diffusion 1.5's scheduler/scheduler_config.json (runwayml/stable-diffusion-v1-5), as published: a
# PNDMScheduler whose file also holds DDIM's clip_sample.
SD15_SCHEDULER = {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                  "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
                  "trained_betas": None, "clip_sample": False}
# An Euler config without clip_sample or set_alpha_to_one: DDIM's defaults (true) apply, so x0_hat is clamped to [-1, 1].
EULER_SCHEDULER = {"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
                   "beta_start": 0.00085, "num_train_timesteps": 1000, "steps_offset": 1}


@pytest.mark.parametrize("scheduler", [SD15_SCHEDULER, EULER_SCHEDULER], ids=["sd15-pndm", "euler"])
def test_a_folder_with_another_scheduler_class_samples_as_diffusers_ddim_swap(independent_folders, tmp_path, scheduler):
    """Our sampling is DDIM from the folder's scheduler config: the latents of diffusers' AnimateDiffPipeline on that
    folder after ``pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)``."""
    import diffusers

    from motiontune.generation.generate import latent_shape
    from motiontune.sampling.ddim import ddim_sample, guided_noise_prediction
    from motiontune.sampling.latents import encode_prompts
    from motiontune.sampling.noise import initial_noise

    folder = tmp_path / "other-scheduler"
    shutil.copytree(independent_folders["animatediff"], folder)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "scheduler": ["diffusers", scheduler["_class_name"]]}))

    pipeline = diffusers.AnimateDiffPipeline.from_pretrained(folder)
    assert type(pipeline.scheduler).__name__ == scheduler["_class_name"]
    pipeline.scheduler = diffusers.DDIMScheduler.from_config(pipeline.scheduler.config)
    assert pipeline.scheduler.config.clip_sample == (scheduler is EULER_SCHEDULER)
    pipeline.set_progress_bar_config(disable=True)
    backbone = load_backbone(folder, device="cpu")
    steps, guidance, prompt = 4, 7.5, "a blue square"
    start = initial_noise("random", latent_shape(backbone, FRAMES, PIXELS, PIXELS), torch.Generator().manual_seed(0))
    expected = pipeline(prompt=prompt, negative_prompt="", num_frames=FRAMES, height=PIXELS, width=PIXELS,
                        num_inference_steps=steps, guidance_scale=guidance, latents=start.clone(), output_type="latent").frames
    predict = guided_noise_prediction(backbone.unet, encode_prompts(backbone, [prompt]), encode_prompts(backbone, [""]), guidance)
    ours = ddim_sample(predict, backbone.scheduler_config, start.clone(), steps, progress=False)
    assert ours.shape == expected.shape == (1, 4, FRAMES, LATENT_PIXELS, LATENT_PIXELS)
    assert (ours - expected).abs().max().item() <= 1e-5
