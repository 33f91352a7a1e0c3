"""A typo in ``train.*`` or ``generate.*`` is an error naming the closest known key, in the library's
``from_params`` and before a ``kedro run`` starts any work (issue 15, item 10)."""

from __future__ import annotations

import pytest

from test_end_to_end import SMALL_RUN, copy_project, kedro


def test_library_settings_refuse_unknown_keys_naming_the_closest_one():
    from motiontune.training.customize import training_config_for
    from motiontune.training.loop import TrainingConfig
    from motiontune.generation.generate import GenerationConfig
    from motiontune.tracking.registry import generate_with_registered_motion

    with pytest.raises(ValueError) as error:
        TrainingConfig.from_params({"stpes": 5})
    assert str(error.value) == "train.stpes: unknown key (did you mean 'steps'?)"
    with pytest.raises(ValueError) as error:
        training_config_for({"method": "motion_embeddings", "steps": None, "stpes": 5, "motion_embeddings": {}})
    assert str(error.value) == "train.stpes: unknown key (did you mean 'steps'?)"
    with pytest.raises(ValueError) as error:
        GenerationConfig.from_params({"seed": 1, "guidance": 3})
    assert str(error.value) == "generate.guidance: unknown key (did you mean 'guidance_scale'?)"
    # the registry refuses it before looking the motion up (which would say the motion is not found)
    with pytest.raises(ValueError) as error:
        generate_with_registered_motion("models:/motion-nope@champion", ["a fox"], {"pretrained_model": "nowhere"}, {"guidance": 3})
    assert str(error.value) == "generate.guidance: unknown key (did you mean 'guidance_scale'?)"

    # nothing close: the known keys are listed; several unknown keys: all of them, on one line
    with pytest.raises(ValueError) as error:
        TrainingConfig.from_params({"zzz": 1, "learnig_rate": 0.1})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("train.zzz: unknown key (known keys: adam_betas, adam_epsilon, checkpoint_every, checkpoint_root, ")
    assert message.endswith("; train.learnig_rate: unknown key (did you mean 'learning_rate'?)")

    # the legitimate keys of train: its loop settings, method, checkpoint_root and every method's block
    config = training_config_for({
        "method": "vmc", "steps": 3, "checkpoint_root": "somewhere", "vmc": {"training": {"learning_rate": 0.5}},
        "motion_embeddings": {"blocks": "deep"}, "motionmatcher": {}, "motiondirector": {},
    })
    assert (config.steps, config.learning_rate) == (3, 0.5)
    assert GenerationConfig.from_params({"lora_scale": 0.5, "motion": None, "prompts": None}).lora_scale == 0.5


@pytest.mark.slow
def test_kedro_run_refuses_typos_in_train_and_generate_before_any_work(project_root, tmp_path):
    project = copy_project(project_root, tmp_path / "project")
    before = sorted(path for path in (project / "data").rglob("*"))
    result = kedro(project, "--pipelines=customize", f"--params={SMALL_RUN},train.stpes=5,generate.guidance=3")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]  # a user error (motiontune.errors.EXIT_CODE)
    assert "train.stpes: unknown key (did you mean 'steps'?)" in output
    assert "generate.guidance: unknown key (did you mean 'guidance_scale'?)" in output
    assert "Traceback" not in output and "ParameterError" not in output  # the message, not a traceback
    assert sorted(path for path in (project / "data").rglob("*")) == before  # nothing was produced


def test_the_whole_run_check_covers_the_world_sections():
    """A typo in any world section fails the parameter check before a pipeline starts, naming the key."""
    from pathlib import Path

    import yaml

    from motiontune.parameters import parameter_problems

    conf = Path(__file__).resolve().parents[1] / "conf" / "base"
    params = {}
    for name in ("parameters.yml", "parameters_world.yml", "parameters_backbone.yml", "parameters_world_backbone.yml",
                 "parameters_world_clip.yml", "parameters_world_benchmark.yml"):
        params.update(yaml.safe_load((conf / name).read_text(encoding="utf-8")))
    assert parameter_problems(params) == []
    mistakes = {
        ("world", "analyser"): ({"lk_windw": 9}, "world.analyser.lk_windw: unknown key (did you mean 'lk_window'?)"),
        ("world_backbone", "training"): ({"clipz": 3}, "world_backbone.clipz: unknown key (did you mean 'clips'?)"),
        ("world_clip", "training"): ({"stepz": 3}, "world_clip.training.stepz: unknown key (did you mean 'steps'?)"),
    }
    for (section, key), (value, message) in mistakes.items():
        broken = {**params, section: {**params[section], key: {**(params[section].get(key) or {}), **value}}}
        assert message in parameter_problems(broken), message
    broken = {**params, "tiny_backbone": {**params["tiny_backbone"], "channels": 3}}
    assert any(problem.startswith("tiny_backbone.channels: unknown key") for problem in parameter_problems(broken))
    broken = {**params, "world_benchmark": {key: value for key, value in params["world_benchmark"].items() if key != "cases"}}
    assert "world_benchmark.cases: missing (see conf/base/parameters_world_benchmark.yml)" in parameter_problems(broken)


def test_the_backbone_section_is_checked_before_anything_loads():
    from motiontune.parameters import parameter_problems

    video = {"num_frames": 8, "height": 32, "width": 32, "fps": 8}
    good = {"pretrained_model": "data/06_models/backbones/world-t2v", "dtype": "float32"}
    assert parameter_problems({"video": video, "backbone": good}) == []
    assert parameter_problems({"video": video, "backbone": {**good, "dtyp": "float16"}}) == [
        "backbone.dtyp: unknown key (did you mean 'dtype'?)"]
    assert parameter_problems({"video": video, "backbone": {**good, "dtype": "float64"}}) == [
        "backbone.dtype: 'float64' is not one of ['bfloat16', 'float16', 'float32']"]


def test_the_whole_run_check_covers_ingest_encode_and_benchmark():
    """A typo or an out-of-range value in ``ingest`` (with its rules), ``encode`` or ``benchmark`` (with each of its
    methods) fails the parameter check before a pipeline starts, as one line naming ``section.key``."""
    from pathlib import Path

    import yaml

    from motiontune.parameters import parameter_problems

    conf = Path(__file__).resolve().parents[1] / "conf" / "base"
    params = {}
    for name in ("parameters.yml", "parameters_ingest.yml", "parameters_encode.yml", "parameters_benchmark.yml"):
        params.update(yaml.safe_load((conf / name).read_text(encoding="utf-8")))
    assert parameter_problems(params) == []  # the shipped sections pass
    rules, vmc = params["ingest"]["rules"], {"label": "VMC", "method": "vmc"}
    mistakes = [
        ("ingest", {"frame_fps": 8}, "ingest.frame_fps: unknown key (did you mean 'frames_fps'?)"),
        ("ingest", {"on_error": "ignore"}, "ingest.on_error: 'ignore' is not one of ['stop', 'skip']"),
        ("ingest", {"frames_fps": 0}, "ingest.frames_fps: must be a positive number, got 0"),
        ("ingest", {"rules": {**rules, "max_sides": 9}}, "ingest.rules.max_sides: unknown key (did you mean 'max_side'?)"),
        ("ingest", {"rules": {**rules, "min_fps": -1.0}}, "ingest.rules.min_fps: must be a positive number, got -1.0"),
        ("encode", {"inversion_step": 5}, "encode.inversion_step: unknown key (did you mean 'inversion_steps'?)"),
        ("encode", {"inversion_steps": 0}, "encode.inversion_steps: must be a positive integer, got 0"),
        ("benchmark", {"seed": [1]}, "benchmark.seed: unknown key (did you mean 'seeds'?)"),
        ("benchmark", {"seeds": []}, "benchmark.seeds: must be a non-empty list of integers, got ()"),
        ("benchmark", {"methods": [{**vmc, "optoins": {}}]}, "benchmark.methods[0].optoins: unknown key (did you mean 'options'?)"),
        ("benchmark", {"methods": [vmc, {**vmc, "method": "vmcc"}]},
         "benchmark.methods[1].method: 'vmcc' is not one of ['motion_embeddings', 'motiondirector', 'motionmatcher', 'vmc']"),
    ]
    for section, change, message in mistakes:
        assert parameter_problems({**params, section: {**params[section], **change}}) == [message], (section, change)
