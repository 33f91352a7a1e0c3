"""Time symmetry of a backbone: the measurement behind its direction competence."""

from __future__ import annotations

import pytest
import torch
import yaml

from motiontune.backbone.loading import load_backbone
from motiontune.training.customize import applied_motion, learn_motion
from motiontune.training.loop import TrainingConfig
from motiontune.world.spec import WorldSpec
from motiontune.world_models.time_symmetry import CONDITIONS, TimeSymmetryConfig, reversal_error, time_symmetry_report


def _random_inputs(unet, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    size = int(unet.config.sample_size)
    latents = torch.randn((count, int(unet.config.in_channels), 8, size // 4, size // 4), generator=generator)
    text = torch.randn((count, 7, int(unet.config.cross_attention_dim)), generator=generator)
    return latents, text


@pytest.fixture
def fresh_tiny_backbone(project_root):
    """Its own copy: the session's shared tiny backbone passes through many other tests first; these need weights
    and processors nobody else has touched."""
    return load_backbone(project_root / "data/06_models/backbones/tiny-t2v", device="cpu")


def test_a_fresh_unet3d_is_time_symmetric_until_a_temporal_convolution_is_lopsided(fresh_tiny_backbone):
    unet = fresh_tiny_backbone.unet
    latents, text = _random_inputs(unet)
    assert reversal_error(unet, latents, 500, text) < 1e-4  # zero-initialised temporal convs, no position encoding
    last = unet.down_blocks[0].temp_convs[0].conv4[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.weight[:, :, 0] = 0.5 * torch.randn(last.weight[:, :, 0].shape, generator=torch.Generator().manual_seed(1))
    assert reversal_error(unet, latents, 500, text) > 0.05  # looks only at the previous frame: time has a direction


def test_a_fresh_animatediff_unet_knows_which_way_time_runs(tiny_animatediff):
    # Its motion modules add sinusoidal position encodings over frames (diffusers' AnimateDiffTransformer3D): no
    # training is needed to break the symmetry (random tiny AnimateDiff: 0.09 at t = 300, 500, 900).
    unet = tiny_animatediff.unet
    latents = torch.randn(2, 4, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1))
    assert reversal_error(unet, latents, 500, text) > 0.05


@pytest.mark.parametrize(("method", "learning_rate", "breaks_symmetry"), [
    ("motion_embeddings", 5e-2, True),   # per-frame query-key and value embeddings: frames get a place in time
    ("vmc", 1e-2, False),                # temporal attention Q/K/V: attention stays permutation-equivariant
    ("motiondirector", 1e-2, False),     # temporal LoRA on attention and feed-forward: the same
])
def test_only_motion_embeddings_can_give_a_time_symmetric_backbone_a_direction(fresh_tiny_backbone, method, learning_rate,
                                                                               breaks_symmetry):
    generator = torch.Generator().manual_seed(3)
    latents = torch.randn(1, 4, 8, 8, 8, generator=generator).cumsum(dim=2)  # frames that drift one way
    features = {"latents": latents, "prompt_embeds": torch.randn(1, 77, 32, generator=generator)}
    row = {"num_frames": 8, "height": 32, "width": 32, "source_path": "ref.mp4", "source_sha256": "0" * 64, "train_prompt": "a ball"}
    config = TrainingConfig(steps=3, learning_rate=learning_rate, checkpoint_every=0, progress_bar=False)
    artifact, _ = learn_motion(fresh_tiny_backbone, method, None, config, features, row)
    probe, text = torch.randn(2, 4, 8, 8, 8, generator=generator), torch.randn(2, 7, 32, generator=generator)
    with applied_motion(fresh_tiny_backbone, artifact, {}):
        error = reversal_error(fresh_tiny_backbone.unet, probe, 500, text)
    assert (error > 1e-2) if breaks_symmetry else (error < 1e-4), error


@pytest.fixture(scope="module")
def world_report(project_root):
    world = yaml.safe_load((project_root / "conf/base/parameters_world.yml").read_text())["world"]
    backbone = load_backbone(project_root / "data/06_models/backbones/world-t2v", device="cpu")
    config = TimeSymmetryConfig.from_params({"clips": 8, "timesteps": [500], "random_latents": 2})
    return time_symmetry_report(backbone, WorldSpec.from_params(world), config)


def test_the_world_backbone_uses_frame_order(world_report):
    assert set(world_report["losses"]["500"]) == set(CONDITIONS)
    # Shuffled frames cost the trained denoiser (measured 1.44 on 48 clips): it draws the object from its neighbours.
    assert world_report["loss_ratios"]["500"]["shuffled_frames"] > 1.15
    assert world_report["mean_reversal_error"] > 1e-3  # training moved it off exact symmetry, if not far


def test_bad_time_symmetry_settings_are_refused(tiny_backbone, project_root):
    with pytest.raises(ValueError, match="unknown family 'wobble'"):
        TimeSymmetryConfig.from_params({"family": "wobble"})
    with pytest.raises(ValueError, match=r"world_backbone\.competence\.time_symmetry\.clipz: unknown key \(did you mean 'clips'\?\)"):
        TimeSymmetryConfig.from_params({"clipz": 3})
    with pytest.raises(ValueError, match="random_latents <= clips"):
        TimeSymmetryConfig.from_params({"clips": 2, "random_latents": 4})
    world = yaml.safe_load((project_root / "conf/base/parameters_world.yml").read_text())["world"]
    with pytest.raises(ValueError, match="no grow parameters with a direction"):
        time_symmetry_report(tiny_backbone, WorldSpec.from_params(world), TimeSymmetryConfig(family="grow", params={}))
