"""Per-method inference defaults (guidance_scale and steps included): the method class, then
train.<method>.inference (recorded in motion.json), then every generate.* setting that is not null."""

from pathlib import Path

import pytest
import torch
import yaml

from motiontune.methods.artifact import MotionArtifact
from motiontune.training.customize import learn_motion
from motiontune.methods.base import method_class, method_config, method_names, recommended_inference
from motiontune.training.loop import TrainingConfig
from motiontune.parameters import parameter_problems
from motiontune.generation import generate as generation
from motiontune.generation.generate import DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS, GenerationConfig, generate_with_motion, resolved_options

ROOT = Path(__file__).resolve().parents[2]
FRAMES, PIXELS = 4, 32


def conf(name):
    return yaml.safe_load((ROOT / "conf" / "base" / name).read_text(encoding="utf-8"))


def test_every_method_has_guidance_and_steps_and_conf_can_set_them():
    train = conf("parameters_train.yml")["train"]
    for name in method_names():
        defaults = method_class(name).inference_defaults
        assert defaults["guidance_scale"] == 10.0 and defaults["steps"] == 50  # seed 004 A.3, uniform across methods
        block = train[name]["inference"]
        assert set(block) <= set(defaults)
        assert recommended_inference(name, train[name]) == {**defaults, **block}


def test_the_inference_block_updates_the_defaults_and_is_not_a_constructor_option():
    options = {"rank": 4, "inference": {"guidance_scale": 12.0, "steps": 75, "noise_init": None}}
    recommended = recommended_inference("motionmatcher", options)
    assert recommended["guidance_scale"] == 12.0 and recommended["steps"] == 75
    assert recommended["noise_init"] == "blend" and recommended["blend_strength"] == 0.3  # null keeps the default
    assert method_config("motionmatcher", options).rank == 4
    with pytest.raises(ValueError, match=r"train.vmc.inference.debias: unknown key"):
        recommended_inference("vmc", {"inference": {"debias": "frame_diff"}})  # VMC has no value embedding


def test_parameter_check_names_an_unknown_inference_key():
    params = {"video": conf("parameters.yml")["video"], "train": conf("parameters_train.yml")["train"]}
    assert parameter_problems(params) == []
    params["train"] = {**params["train"], "method": "vmc", "vmc": {**params["train"]["vmc"], "inference": {"guidance": 12}}}
    assert any("train.vmc.inference.guidance: unknown key (did you mean 'guidance_scale'?)" in problem for problem in parameter_problems(params))


def test_generation_takes_guidance_and_steps_from_the_artifact_unless_set():
    artifact = MotionArtifact(tensors={}, manifest={"inference_defaults": {"noise_init": "blend", "guidance_scale": 12.0, "steps": 75}})
    options = resolved_options(artifact, GenerationConfig())
    assert (options["guidance_scale"], options["steps"]) == (12.0, 75)
    options = resolved_options(artifact, GenerationConfig(guidance_scale=7.5, steps=20))
    assert (options["guidance_scale"], options["steps"]) == (7.5, 20)
    older = MotionArtifact(tensors={}, manifest={"inference_defaults": {"noise_init": "inversion"}})  # recorded before
    options = resolved_options(older, GenerationConfig())
    assert (options["guidance_scale"], options["steps"]) == (DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS) == (10.0, 50)
    shipped = GenerationConfig.from_params(conf("parameters_generate.yml")["generate"])
    assert shipped.guidance_scale is None and shipped.steps is None
    with pytest.raises(ValueError, match="generate.steps: must be at least 1"):
        GenerationConfig(steps=0)


def test_a_trained_motion_records_its_inference_block_and_generation_uses_it(tiny_backbone, monkeypatch):
    generator = torch.Generator().manual_seed(2)
    features = {"latents": torch.randn(1, 4, FRAMES, 8, 8, generator=generator), "prompt_embeds": torch.randn(1, 77, 32, generator=generator)}
    row = {"num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "source_path": "ref.mp4", "source_sha256": "0" * 64, "train_prompt": "a ball"}
    config = TrainingConfig(steps=1, learning_rate=1e-3, checkpoint_every=0, progress_bar=False)
    options = {"inference": {"guidance_scale": 7.5, "steps": 2}}
    artifact, _ = learn_motion(tiny_backbone, "vmc", options, config, features, row)
    assert artifact.manifest["inference_defaults"] == {
        "noise_init": "inversion", "guidance_scale": 7.5, "steps": 2,
        "inversion_model": "customised", "inversion_prompt": "empty", "inversion_steps": None,
    }

    used = []
    guided, sample = generation.guided_noise_prediction, generation.ddim_sample
    monkeypatch.setattr(generation, "guided_noise_prediction", lambda unet, embeds, negative, scale: used.append(scale) or guided(unet, embeds, negative, scale))
    monkeypatch.setattr(generation, "ddim_sample", lambda predict, scheduler, start, steps, **kw: used.append(steps) or sample(predict, scheduler, start, steps, **kw))
    generate_with_motion(tiny_backbone, artifact, ["a ball"], GenerationConfig(noise_init="random", progress_bar=False))
    generate_with_motion(tiny_backbone, artifact, ["a ball"], GenerationConfig(noise_init="random", guidance_scale=3.0, steps=1, progress_bar=False))
    assert used == [7.5, 2, 3.0, 1]
