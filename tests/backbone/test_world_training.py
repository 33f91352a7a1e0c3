"""World backbone training: a loadable diffusers folder, the world's words as tokens, resumable stages."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from motiontune.backbone.loading import load_backbone
from motiontune.backbone.tiny import TinyBackboneSpec
from motiontune.world_models.backbone_training import (
    DiffusionStage,
    TrainSplit,
    VaeStage,
    WorldBackboneConfig,
    WorldBackboneError,
    train_diffusion,
    train_world_backbone,
)
from motiontune.world.captions import world_vocabulary
from motiontune.world import WorldSpec, sample_world

SMALL = WorldBackboneConfig(
    seed=3, clips=12, vae=VaeStage(steps=4, batch_size=4), diffusion=DiffusionStage(steps=4, batch_size=2, warmup_steps=1),
    refine=DiffusionStage(steps=2, batch_size=2, warmup_steps=0, final_learning_rate_share=1.0, seed=9),
    checkpoint_every=2, log_every=2, progress_bar=False,
)


@pytest.fixture(scope="module")
def specs(project_root: Path) -> tuple[WorldSpec, TinyBackboneSpec]:
    world = yaml.safe_load((project_root / "conf/base/parameters_world.yml").read_text())["world"]
    tiny = yaml.safe_load((project_root / "conf/base/parameters_backbone.yml").read_text())["tiny_backbone"]
    return WorldSpec.from_params({**world, "height": 32, "width": 32}), TinyBackboneSpec.from_dict(tiny)


@pytest.fixture(scope="module")
def trained(specs, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("world") / "backbone"
    summary = train_world_backbone(out, *specs, SMALL, out.parent / "work")
    return out, summary


def test_trained_folder_loads_like_zeroscope_and_tokenizes_every_world_word(trained, specs):
    out, summary = trained
    backbone = load_backbone(out, device="cpu")
    assert backbone.vae_scale_factor == 4 and int(backbone.unet.config.sample_size) == 8
    caption = sample_world(specs[0], 1, split="heldout", seed=0)[0].caption
    ids = backbone.tokenizer(caption).input_ids
    assert len(ids) == len(caption.split()) + 2  # one token per word, held-out families' words included
    assert backbone.vae.config.scaling_factor == pytest.approx(summary["vae_scaling_factor"])
    assert json.loads((out / "training_summary.json").read_text()) == summary
    assert not list((out.parent / "work").glob("*checkpoint*"))  # checkpoints go once the model is saved


def test_scaling_factor_gives_unit_variance_latents(trained, specs):
    out, _ = trained
    backbone = load_backbone(out, device="cpu")
    from motiontune.world_models.backbone_training import encode_clips

    clips = torch.stack([torch.from_numpy(s.frames) for s in sample_world(specs[0], SMALL.clips, split="train", seed=SMALL.seed)])
    latents = encode_clips(backbone.vae, clips.numpy()) * backbone.vae.config.scaling_factor
    assert latents.std().item() == pytest.approx(1.0, rel=1e-3)


def test_vocabulary_covers_every_family_caption(specs):
    words = set(world_vocabulary(specs[0]))
    for sample in sample_world(specs[0], 60, split="all", seed=1):
        assert set(sample.caption.split()) <= words


def test_a_killed_run_resumes_to_the_same_weights(specs, tmp_path, monkeypatch):
    """Interrupt the diffusion stage after its step-2 checkpoint; the rerun resumes and ends bitwise equal."""
    reference = train_world_backbone(tmp_path / "a", *specs, SMALL, tmp_path / "a-work")
    calls = {"n": 0}
    original = torch.nn.utils.clip_grad_norm_

    def dying_clip(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "previous-backbone.txt").write_text("still here")
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", dying_clip)
    with pytest.raises(KeyboardInterrupt):
        train_world_backbone(tmp_path / "b", *specs, SMALL, tmp_path / "b-work")
    assert (tmp_path / "b-work" / "diffusion_checkpoint.safetensors").exists()
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["previous-backbone.txt"]  # the old backbone is untouched
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", original)
    resumed = train_world_backbone(tmp_path / "b", *specs, SMALL, tmp_path / "b-work")
    assert not (tmp_path / "b" / "previous-backbone.txt").exists() and (tmp_path / "b" / "model_index.json").exists()
    assert resumed["diffusion_final_loss"] == reference["diffusion_final_loss"]
    for part in ("unet", "vae", "text_encoder"):
        saved_a = load_file(str(tmp_path / "a" / part / "diffusion_pytorch_model.safetensors")) if part != "text_encoder" else load_file(str(tmp_path / "a" / part / "model.safetensors"))
        saved_b = load_file(str(tmp_path / "b" / part / "diffusion_pytorch_model.safetensors")) if part != "text_encoder" else load_file(str(tmp_path / "b" / part / "model.safetensors"))
        assert saved_a.keys() == saved_b.keys()
        assert all(torch.equal(saved_a[k], saved_b[k]) for k in saved_a), part


def test_other_seed_other_weights(specs, trained, tmp_path):
    out, _ = trained
    other = tmp_path / "other"
    train_world_backbone(other, *specs, replace(SMALL, seed=4), tmp_path / "work")
    first = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    second = load_file(str(other / "unet" / "diffusion_pytorch_model.safetensors"))
    assert any(not torch.equal(first[k], second[k]) for k in first)


def test_bad_parameters_are_refused_in_one_message():
    with pytest.raises(ValueError, match=r"world_backbone\.vae\.stepz: unknown key \(did you mean 'steps'\?\)"):
        WorldBackboneConfig.from_params({"vae": {"stepz": 3}})
    with pytest.raises(ValueError, match="caption shares"):
        WorldBackboneConfig.from_params({"diffusion": {"empty_caption_share": 0.8, "appearance_caption_share": 0.5}})
    with pytest.raises(ValueError, match=r"device: 'gpu0' is not a torch device"):
        WorldBackboneConfig.from_params({"device": "gpu0"})
    assert WorldBackboneConfig.from_params({"device": "cuda:1"}).device == "cuda:1"  # parsed, not opened


def test_the_refine_stage_continues_from_the_second_stage(specs, trained, tmp_path):
    out, summary = trained
    plain = train_world_backbone(tmp_path / "plain", *specs, replace(SMALL, refine=DiffusionStage(steps=0)), tmp_path / "work")
    assert plain["diffusion_final_loss"] == summary["diffusion_final_loss"]  # the same first two stages
    assert plain["refine_first_loss"] is None and summary["refine_steps"] == 2 and summary["refine_first_loss"] > 0
    refined = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    unrefined = load_file(str(tmp_path / "plain" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert any(not torch.equal(refined[k], unrefined[k]) for k in refined)
    with pytest.raises(ValueError, match="refine: caption shares"):
        WorldBackboneConfig.from_params({"refine": {"empty_caption_share": 0.8, "appearance_caption_share": 0.5}})



def test_the_diffusion_stage_trains_an_animatediff_unet_too(project_root, tmp_path):
    """AnimateDiff takes the text per frame: the stage goes through the layout, and its motion modules learn."""
    folder = project_root / "data/06_models/backbones/tiny-animatediff"
    backbone = load_backbone(folder, device="cpu")  # loaded frozen, as for the motion methods
    backbone.unet.requires_grad_(True)
    backbone.text_encoder.requires_grad_(True)
    before = {k: v.clone() for k, v in backbone.unet.state_dict().items() if "motion_modules" in k}
    size = int(backbone.unet.config.sample_size)
    latents = torch.randn((3, int(backbone.unet.config.in_channels), 8, size, size), generator=torch.Generator().manual_seed(0))
    captions = [("a red circle moving right", "a red circle")] * 3
    history = train_diffusion(backbone.unet, backbone.text_encoder, backbone.tokenizer, latents, captions,
                              backbone.scheduler_config, SMALL, tmp_path, "animatediff")
    assert len(history) == SMALL.diffusion.steps and all(torch.isfinite(torch.tensor(history)))
    after = backbone.unet.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def _captions_drawn(backbone, stage: DiffusionStage, work_dir: Path) -> list[str]:
    """Which caption each clip of each step trained with, read from the text encoder's input ids."""
    captions = [("a red circle moving right", "a red circle")] * 3
    texts = {"full": captions[0][0], "appearance": captions[0][1], "simplified": "a circle moving right", "empty": ""}
    ids = {name: tuple(backbone.tokenizer(text, padding="max_length", max_length=backbone.tokenizer.model_max_length,
                                          truncation=True).input_ids) for name, text in texts.items()}
    names = {value: name for name, value in ids.items()}
    drawn: list[str] = []
    hook = backbone.text_encoder.register_forward_pre_hook(
        lambda module, args: drawn.extend(names[tuple(row.tolist())] for row in args[0]))
    size = int(backbone.unet.config.sample_size)
    latents = torch.randn((3, int(backbone.unet.config.in_channels), 8, size, size), generator=torch.Generator().manual_seed(0))
    try:
        train_diffusion(backbone.unet, backbone.text_encoder, backbone.tokenizer, latents, captions,
                        backbone.scheduler_config, replace(SMALL, checkpoint_every=0), work_dir, "captions", stage)
    finally:
        hook.remove()
    return drawn


def test_a_simplified_caption_share_replaces_only_full_captions_with_colour_free_ones(project_root, tmp_path):
    """VMC trains and inverts with the colour-free caption: the share swaps full captions for it, the same draws
    otherwise (a share of 0 trains exactly as before the share existed)."""
    backbone = load_backbone(project_root / "data/06_models/backbones/tiny-animatediff", device="cpu")
    backbone.unet.requires_grad_(True)
    backbone.text_encoder.requires_grad_(True)
    stage = DiffusionStage(steps=6, batch_size=8, warmup_steps=0, empty_caption_share=0.2, appearance_caption_share=0.2)
    without = _captions_drawn(backbone, stage, tmp_path / "without")
    with_share = _captions_drawn(backbone, replace(stage, simplified_caption_share=0.4), tmp_path / "with")
    assert "simplified" not in without and {"full", "appearance", "empty"} <= set(without)
    assert len(with_share) == len(without) == 6 * 8
    swapped = [(a, b) for a, b in zip(without, with_share, strict=True) if a != b]
    assert swapped and all(pair == ("full", "simplified") for pair in swapped)
    assert 0.2 < with_share.count("simplified") / len(with_share) < 0.6
    with pytest.raises(ValueError, match="caption shares must add up to at most 1"):
        WorldBackboneConfig.from_params({"continuation": {"simplified_caption_share": 0.7}})
    with pytest.raises(ValueError, match="must not be negative"):
        WorldBackboneConfig.from_params({"continuation": {"simplified_caption_share": -0.1}})


# --------------------------------------------------------------------------- the default's recipe (issue 18)


@pytest.fixture(scope="module")
def animatediff_spec(project_root: Path) -> TinyBackboneSpec:
    tiny = yaml.safe_load((project_root / "conf/base/parameters_backbone.yml").read_text())["tiny_animatediff"]
    return TinyBackboneSpec.from_dict(tiny, section="tiny_animatediff")


ASYMMETRIC = TrainSplit(left_out_families=("shrink", "zoom_out"), kept_directions=("right", "down_right", "down", "up_right"))


def test_the_split_leaves_out_the_named_families_and_directions(specs):
    samples = sample_world(specs[0], 300, split="train", seed=0)
    kept = [s for s in samples if ASYMMETRIC.keeps(s)]
    dropped = [s for s in samples if not ASYMMETRIC.keeps(s)]
    assert kept and dropped and TrainSplit().keeps(dropped[0])  # the default split keeps every clip
    assert not {s.family for s in kept} & {"shrink", "zoom_out"}
    directions = {str(dict(s.truth.params)["direction"]) for s in kept if "direction" in dict(s.truth.params)}
    assert directions and directions <= set(ASYMMETRIC.kept_directions)
    assert {s.family for s in kept} >= {"translate", "grow", "circle_clockwise"}  # families without a direction stay
    assert {s.family for s in dropped if s.family not in ("shrink", "zoom_out")} <= {"translate", "pan"}
    with pytest.raises(ValueError, match=r"split\.left_out_families: unknown family 'shrinks'.*split\.kept_directions: unknown direction 'rightward'"):
        WorldBackboneConfig.from_params({"split": {"left_out_families": ["shrinks"], "kept_directions": ["rightward"]}})
    with pytest.raises(ValueError, match=r"architecture: must be one of tiny_backbone, tiny_animatediff, got 'tiny'"):
        WorldBackboneConfig.from_params({"architecture": "tiny"})
    with pytest.raises(ValueError, match=r"parts_from: '/nowhere' is not a backbone folder"):
        WorldBackboneConfig.from_params({"parts_from": "/nowhere"})


def _unet_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


def test_an_animatediff_backbone_on_another_backbones_vae_with_a_continuation(specs, animatediff_spec, trained, tmp_path):
    """The default's recipe: AnimateDiff layout, the VAE/tokenizer/scheduler of a trained world backbone (stage 1
    skipped), an asymmetric split, and a fourth stage that is exactly continuing the saved three-stage folder."""
    source, source_summary = trained
    config = replace(SMALL, architecture="tiny_animatediff", parts_from=str(source), split=ASYMMETRIC,
                     continuation=DiffusionStage(steps=2, batch_size=2, warmup_steps=0, final_learning_rate_share=1.0, seed=11))
    out = tmp_path / "animatediff"
    summary = train_world_backbone(out, specs[0], animatediff_spec, config, tmp_path / "work")
    backbone = load_backbone(out, device="cpu")
    assert backbone.family == "animatediff" and not (out / "motion_adapter").exists()
    assert json.loads((out / "model_index.json").read_text())["motion_adapter"] == [None, None]
    for part, name in (("vae", "diffusion_pytorch_model.safetensors"), ("tokenizer", "vocab.json"), ("scheduler", "scheduler_config.json")):
        assert (out / part / name).read_bytes() == (source / part / name).read_bytes(), part
    assert summary["vae_steps"] == 0 and summary["vae_final_loss"] is None
    assert summary["vae_scaling_factor"] == source_summary["vae_scaling_factor"]
    assert summary["layout"] == "animatediff" and summary["continuation_steps"] == 2 and summary["continuation_first_loss"] > 0
    drawn = sample_world(specs[0], SMALL.clips, split="train", seed=SMALL.seed)
    assert summary["clips_kept"] == sum(ASYMMETRIC.keeps(s) for s in drawn) < SMALL.clips

    # The same recipe without the fourth stage, then that stage run on the saved folder: bitwise the same weights.
    three = tmp_path / "three"
    train_world_backbone(three, specs[0], animatediff_spec, replace(config, continuation=DiffusionStage(steps=0)), tmp_path / "work3")
    saved = load_backbone(three, device="cpu")
    saved.unet.requires_grad_(True)
    saved.text_encoder.requires_grad_(True)
    from motiontune.world.captions import appearance_caption
    from motiontune.world_models.backbone_training import encode_clips

    kept = [s for s in drawn if ASYMMETRIC.keeps(s)]
    latents = encode_clips(saved.vae, np.stack([s.frames for s in kept])) * float(saved.vae.config.scaling_factor)
    train_diffusion(saved.unet, saved.text_encoder, saved.tokenizer, latents, [(s.caption, appearance_caption(s)) for s in kept],
                    saved.scheduler_config, config, tmp_path / "work4", "continued", config.continuation, "continuation")
    continued = saved.unet.state_dict()
    assert all(torch.equal(continued[k], v) for k, v in _unet_weights(out).items())
    assert any(not torch.equal(continued[k], v) for k, v in _unet_weights(three).items())


def test_parts_from_a_backbone_of_another_vocabulary_is_refused(specs, animatediff_spec, trained, tmp_path):
    source, _ = trained
    other = tmp_path / "other-words"
    shutil.copytree(source, other)
    vocab = json.loads((other / "tokenizer" / "vocab.json").read_text())
    (other / "tokenizer" / "vocab.json").write_text(json.dumps({**vocab, "zebra</w>": len(vocab)}))
    config = replace(SMALL, architecture="tiny_animatediff", parts_from=str(other))
    with pytest.raises(WorldBackboneError, match=r"parts_from: .*other-words's tokenizer \(vocab\.json\) is not the world's vocabulary"):
        train_world_backbone(tmp_path / "out", specs[0], animatediff_spec, config, tmp_path / "work")
