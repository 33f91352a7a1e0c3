"""Learned motions in the MLflow model registry: register per run, aliases, pyfunc round trip, generation.

Everything runs against a throwaway SQLite tracking store in tmp_path, offline, on the tiny backbone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

VIDEO = {"num_frames": 8, "height": 64, "width": 64, "fps": 8}
INGEST = {
    "entries": ["ball_right"], "frames_fps": 8, "resample_to_fps": True,
    "rules": {"min_fps": 1.0, "max_fps": 240.0, "min_side": 16, "max_side": 8192},
}


def lazy(values):
    return {key: (lambda value=value: value) for key, value in values.items()}


@pytest.fixture(scope="module")
def backbone_params(project_root):
    return {"pretrained_model": str(project_root / "data/06_models/backbones/tiny-t2v"), "device": "cpu", "dtype": "float32"}


@pytest.fixture(scope="module")
def reference(project_root, backbone_params):
    """ball_right, ingested and encoded (few inversion steps)."""
    from motiontune.pipelines.encode.nodes import encode_references
    from motiontune.pipelines.ingest.nodes import ingest_references

    manifest = yaml.safe_load((project_root / "data/01_raw/manifest.yml").read_text())
    clips, metadata = ingest_references(manifest, VIDEO, {**INGEST, "manifest_dir": str(project_root / "data/01_raw")})
    features = encode_references(lazy(clips), metadata, backbone_params, {"inversion_steps": 2, "progress_bar": False})
    return features, metadata


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fresh tracking + registry store; artifacts under the same temporary folder."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    # set_registry_uri / set_experiment also write MLFLOW_* variables that kedro subprocesses of later tests inherit
    environment = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("registry-test", artifact_location=(root / "mlruns").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    yield uri
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous)
    for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(environment)


def train_once(reference, backbone_params, tmp_path, steps=1):
    """One `kedro run`-like MLflow run of the train node; returns its run id."""
    import mlflow

    from motiontune.pipelines.train.nodes import train_motions

    features, metadata = reference
    train = {
        "method": "motion_embeddings", "steps": steps, "seed": 0, "learning_rate": 0.05, "checkpoint_every": 0,
        "progress_bar": False, "checkpoint_root": str(tmp_path), "motion_embeddings": {"blocks": "deep"},
    }
    with mlflow.start_run() as run:
        train_motions(lazy(features), metadata, backbone_params, train)
    return run.info.run_id


def test_every_run_registers_a_new_version_and_champion_is_promoted(store, reference, backbone_params, tmp_path, monkeypatch):
    import mlflow

    from motiontune.tracking import registry

    client = mlflow.MlflowClient()
    first = train_once(reference, backbone_params, tmp_path / "one")
    model = client.get_registered_model("motion-ball_right")
    assert [str(v.version) for v in client.search_model_versions("name='motion-ball_right'")] == ["1"]
    assert str(client.get_model_version_by_alias(model.name, "latest").version) == "1"

    version = client.get_model_version("motion-ball_right", "1")
    assert version.run_id == first
    source_sha = reference[1].set_index("name").loc["ball_right", "source_sha256"]
    assert version.tags["method"] == "motion_embeddings"
    assert version.tags["source_video_sha256"] == source_sha
    assert version.tags["backbone"].endswith("tiny-t2v") and len(version.tags["backbone_unet_config_sha256"]) == 64
    assert version.tags["git_commit"] == registry.git_commit()
    assert version.tags["reference_inversion"] == "true"

    # the run holds the loss series, final metrics, the artifact and the tags of issue 5
    run = client.get_run(first)
    assert [m.step for m in client.get_metric_history(first, "ball_right/loss")] == [0]
    assert "ball_right/final_loss" in run.data.metrics
    assert run.data.tags["method"] == "motion_embeddings"
    assert run.data.tags["motion/ball_right/source_video_sha256"] == source_sha
    assert run.data.tags["git_commit"] == registry.git_commit()
    assert {a.path for a in client.list_artifacts(first, "motions/ball_right")} == {"motions/ball_right/motion.json", "motions/ball_right/motion.safetensors"}

    # models from code: the model is a copy of pyfunc_model.py plus the motion files; nothing pickled, no backbone
    local = Path(mlflow.artifacts.download_artifacts("models:/motion-ball_right/1"))
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    assert "artifacts/motion/motion.safetensors" in files and "artifacts/motion/motion.json" in files
    assert "artifacts/reference_inversion.safetensors" in files
    assert not [f for f in files if "unet" in f or "vae" in f], files
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["model_code_path"].endswith("pyfunc_model.py")

    second = train_once(reference, backbone_params, tmp_path / "two", steps=2)
    assert sorted(str(v.version) for v in client.search_model_versions("name='motion-ball_right'")) == ["1", "2"]
    assert str(client.get_model_version_by_alias("motion-ball_right", "latest").version) == "2"
    assert client.get_model_version("motion-ball_right", "2").run_id == second
    assert [m.step for m in client.get_metric_history(second, "ball_right/loss")] == [0, 1]
    assert client.get_model_version("motion-ball_right", "2").tags["train_steps"] == "2"

    # champion is set by a command, and only there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    assert registry.main(["promote", "ball_right", "1"]) == 0
    assert str(client.get_model_version_by_alias("motion-ball_right", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("motion-ball_right", "latest").version) == "2"
    rows = {(row["version"], tuple(row["aliases"])) for row in registry.list_motions(store)}
    assert rows == {(1, ("champion",)), (2, ("latest",))}
    with pytest.raises(ValueError, match="has no version 7"):
        registry.promote("ball_right", 7, uri=store)
    with pytest.raises(ValueError, match="no registered motion 'motion-nope'"):
        registry.promote("nope", 1, uri=store)
    with pytest.raises(ValueError, match="'latest' is not settable"):
        registry.promote("ball_right", 1, alias="latest", uri=store)


def test_registered_motion_generates_videos_and_refuses_a_foreign_backbone(store, reference, backbone_params, tmp_path, project_root, caplog):
    import mlflow
    import pandas as pd

    from motiontune.backbone.loading import BackboneError
    from motiontune.pipelines.generate.nodes import generate_from_registry

    client = mlflow.MlflowClient()
    try:
        client.get_model_version_by_alias("motion-ball_right", "latest")
    except mlflow.exceptions.MlflowException:
        train_once(reference, backbone_params, tmp_path / "train")
    client.set_registered_model_alias("motion-ball_right", "champion", "1")

    model = mlflow.pyfunc.load_model("models:/motion-ball_right@latest")
    videos = model.predict(["a blue car on a snowy road", "a dog running on a beach"], params={"steps": 2})
    assert len(videos) == 2
    assert all(v.dtype == np.uint8 and v.shape == (8, 64, 64, 3) for v in videos)
    # prompts given as a DataFrame, written to output_dir as mp4 files
    from motiontune.io.video import read_video

    paths = model.predict(pd.DataFrame({"prompt": ["a blue car on a snowy road"]}), params={"steps": 1, "output_dir": str(tmp_path / "out")})
    assert paths == [str(tmp_path / "out" / "00_a-blue-car-on-a-snowy-road.mp4")]
    assert read_video(Path(paths[0]))[0].shape == (8, 64, 64, 3)

    # a backbone with another UNet configuration is refused, naming both sides
    foreign = tmp_path / "foreign-t2v"
    shutil.copytree(project_root / "data/06_models/backbones/tiny-t2v", foreign)
    config = json.loads((foreign / "unet/config.json").read_text())
    config["norm_eps"] = config["norm_eps"] * 10  # same weights, another architecture config
    (foreign / "unet/config.json").write_text(json.dumps(config))
    with pytest.raises(BackboneError, match="does not fit backbone") as error:
        model.predict(["a dog"], params={"steps": 1, "backbone": str(foreign)})
    assert "tiny-t2v" in str(error.value) and "foreign-t2v" in str(error.value)

    # the Kedro generate node with generate.motion: the champion, on the configured backbone
    generate = {"seed": 0, "steps": 2, "guidance_scale": 10.0, "progress_bar": False,
                "motion": "models:/motion-ball_right@champion", "prompts": ["a blue car on a snowy road"]}
    outputs = generate_from_registry(backbone_params, VIDEO, generate)
    assert list(outputs) == ["ball_right/v1/00_a-blue-car-on-a-snowy-road"]
    assert outputs["ball_right/v1/00_a-blue-car-on-a-snowy-road"].frames.shape == (8, 64, 64, 3)
    assert generate_from_registry(backbone_params, VIDEO, {**generate, "motion": None}) == {}
    with pytest.raises(ValueError, match="models:/motion-nope@champion: not found in the MLflow registry"):
        generate_from_registry(backbone_params, VIDEO, {**generate, "motion": "models:/motion-nope@champion"})

    # a motion registered without the reference inversion falls back to random noise, saying so
    from motiontune.methods.artifact import load_motion_artifact
    from motiontune.tracking.registry import register_motion

    artifact = load_motion_artifact(Path(mlflow.artifacts.download_artifacts("models:/motion-ball_right/1")) / "artifacts/motion")
    with mlflow.start_run():
        register_motion("no_inversion", artifact, reference=None)
    caplog.set_level(logging.WARNING)
    without = mlflow.pyfunc.load_model("models:/motion-no_inversion@latest")
    assert without.predict(["a dog"], params={"steps": 1})[0].shape == (8, 64, 64, 3)
    assert "needs the reference's DDIM inversion, which this model does not hold: using 'random'" in caplog.text


def test_generate_parameters_for_the_registry_are_checked():
    from motiontune.parameters import parameter_problems
    from motiontune.tracking.registry import model_name, registry_generate_problems, registry_prompts

    assert model_name("ball_right") == model_name("motion-ball_right") == "motion-ball_right"
    assert registry_generate_problems({"motion": None, "prompts": None}) == []
    assert registry_prompts({"prompts": "a fox | a red car|"}) == ["a fox", "a red car"]
    assert registry_prompts({"prompts": ["a fox"]}) == ["a fox"]
    (problem,) = registry_generate_problems({"motion": "models:/motion-ball_right@champion", "prompts": None})
    assert problem.startswith("generate.prompts: give the prompts")
    (problem,) = registry_generate_problems({"motion": "models:/motion-x@champion", "prompts": [3]})
    assert problem.startswith("generate.prompts: a list of non-empty prompts")
    params = {"video": VIDEO, "generate": {"steps": 2, "motion": "models:/motion-x@champion", "prompts": None}}
    assert any(p.startswith("generate.prompts: give the prompts") for p in parameter_problems(params))
    assert parameter_problems({"video": VIDEO, "generate": {"steps": 2, "motion": None, "prompts": None}}) == []


def test_dvc_reports_loss_curves_and_metrics_summary(tmp_path):
    from motiontune.tracking.dvc_reports import write_loss_curves, write_metrics_summary

    (tmp_path / "training_summary.json").write_text(json.dumps({"a": {"loss_history": [1.0, 0.5]}, "b": {"loss_history": [2.0]}}))
    (tmp_path / "curves").mkdir()
    (tmp_path / "curves" / "stale.csv").write_text("step,loss\n")
    write_loss_curves(tmp_path / "training_summary.json", tmp_path / "curves")
    assert sorted(p.name for p in (tmp_path / "curves").iterdir()) == ["a.csv", "b.csv"]
    assert (tmp_path / "curves" / "a.csv").read_text().splitlines() == ["step,loss", "0,1", "1,0.5"]

    (tmp_path / "meta.csv").write_text("name,prompt\na,x\nb,y\n")
    for name, value in (("a", 0.2), ("b", 0.4)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"mean": {"motion_fidelity": value, "fid": None}, "videos": []}))
    summary = write_metrics_summary(tmp_path, tmp_path / "meta.csv", tmp_path / "summary.json")
    assert summary["motions"]["b"] == {"fid": None, "motion_fidelity": 0.4}
    assert summary["mean"]["motion_fidelity"] == pytest.approx(0.3) and summary["mean"]["fid"] is None
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    (tmp_path / "b" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="b/metrics.json"):
        write_metrics_summary(tmp_path, tmp_path / "meta.csv", tmp_path / "summary.json")


def test_pipeline_and_registry_generation_use_the_same_noise_for_the_same_seed(store, reference, backbone_params, tmp_path):
    """MotionDirector issue #18: videos made after training and videos made later from the stored motion must
    be the same for the same seed (same noise init, same reference inversion, same sampler)."""
    import mlflow

    from motiontune.pipelines.generate.nodes import generate_videos
    from motiontune.pipelines.train.nodes import train_motions

    features, metadata = reference
    train = {
        "method": "motion_embeddings", "steps": 1, "seed": 0, "learning_rate": 0.05, "checkpoint_every": 0,
        "progress_bar": False, "checkpoint_root": str(tmp_path), "motion_embeddings": {"blocks": "deep"},
    }
    with mlflow.start_run():
        artifacts, _ = train_motions(lazy(features), metadata, backbone_params, train)
    generate = {"seed": 7, "steps": 2, "progress_bar": False}
    pipeline_videos = generate_videos(lazy(artifacts), lazy(features), metadata, backbone_params, VIDEO, generate)
    prompts = [prompt.strip() for prompt in metadata.loc[0, "target_prompts"].split("|")]
    assert artifacts["ball_right"].manifest["inference_defaults"]["noise_init"] != "random"  # the inversion matters

    model = mlflow.pyfunc.load_model("models:/motion-ball_right@latest")
    standalone = model.predict(prompts[::-1], params={"steps": 2, "seed": 7})
    pipeline_frames = [clip.frames for _, clip in sorted(pipeline_videos.items())]
    # each prompt starts from the seed's own noise, whatever its position in the list
    assert all(np.array_equal(a, b) for a, b in zip(pipeline_frames, standalone[::-1]))
    assert not np.array_equal(model.predict(prompts[:1], params={"steps": 2, "seed": 8})[0], pipeline_frames[0])


@pytest.fixture(scope="module")
def lora_motion(store, reference, backbone_params, tmp_path_factory):
    """ball_right learnt by MotionDirector (a LoRA method: ``lora_scale`` matters), registered as
    ``motion-lora_ball_right`` (its own name: the other tests' ``motion-ball_right`` versions stay as they are)."""
    import mlflow

    from motiontune.training.customize import learn_motion
    from motiontune.training.loop import TrainingConfig
    from motiontune.tracking.registry import cached_backbone, register_motion

    features, metadata = reference
    backbone = cached_backbone(backbone_params["pretrained_model"], None, "cpu", "float32")
    # A large learning rate: after 2 AdamW steps the LoRA changes the video visibly at lora_scale 1.
    config = TrainingConfig(steps=2, learning_rate=0.05, checkpoint_every=0, progress_bar=False)
    row = metadata.to_dict(orient="records")[0]
    artifact, _ = learn_motion(backbone, "motiondirector", {"rank": 4}, config, features["ball_right"], row)
    with mlflow.start_run():
        register_motion("lora_ball_right", artifact, features["ball_right"])
    return "models:/motion-lora_ball_right@latest"


def test_lora_scale_reaches_a_generation_from_the_registry(lora_motion, backbone_params):
    """generate.lora_scale was dropped on the way to the registered model (issue 15, item 9): at lora_scale 0
    the registered LoRA motion must give exactly the backbone's own video."""
    from motiontune.pipelines.generate.nodes import generate_from_registry
    from motiontune.generation.generate import GenerationConfig, generate_without_motion
    from motiontune.tracking.registry import cached_backbone

    prompt = "a blue car on a snowy road"
    generate = {"seed": 3, "steps": 2, "noise_init": "random", "progress_bar": False, "motion": lora_motion, "prompts": [prompt]}
    backbone = cached_backbone(backbone_params["pretrained_model"], None, "cpu", "float32")
    # The control: the backbone alone, same seed, noise, steps and guidance (MotionDirector's: 10).
    alone = generate_without_motion(backbone, [prompt], 8, 64, 64, GenerationConfig(seed=3, steps=2, guidance_scale=10.0, noise_init="random", progress_bar=False))[0]

    (with_lora,) = generate_from_registry(backbone_params, VIDEO, generate).values()
    assert not np.array_equal(with_lora.frames, alone)  # the learnt LoRA changes the video at its default scale 1
    (off,) = generate_from_registry(backbone_params, VIDEO, {**generate, "lora_scale": 0.0}).values()
    np.testing.assert_array_equal(off.frames, alone)
    # and straight through the pyfunc model
    import mlflow

    model = mlflow.pyfunc.load_model(lora_motion)
    (direct,) = model.predict([prompt], params={"seed": 3, "steps": 2, "noise_init": "random", "lora_scale": 0.0})
    np.testing.assert_array_equal(direct, alone)


def sample_generation_options() -> dict:
    """A value of every GenerationConfig field, none of them its default (so each must be passed on to count)."""
    import dataclasses
    import types
    import typing

    from motiontune.generation.generate import GenerationConfig

    samples = {bool: False, int: 3, float: 0.25, str: "x"}
    hints = typing.get_type_hints(GenerationConfig)
    values = {}
    for field in dataclasses.fields(GenerationConfig):
        hint = hints[field.name]
        (kind,) = [k for k in typing.get_args(hint) if k is not type(None)] if isinstance(hint, types.UnionType) else [hint]
        values[field.name] = not field.default if kind is bool else samples[kind]
        assert values[field.name] != field.default, field.name
    return values


def test_every_generation_option_is_accepted_by_the_parameter_check_the_registry_and_the_model(lora_motion, backbone_params, monkeypatch):
    """The registry, the pyfunc model (its signature and predict) and the parameter check all take every
    GenerationConfig field (issue 15, item 9: the option list was written out five times, three lacked lora_scale)."""
    import mlflow

    import motiontune.generation.generate as generation
    from motiontune.parameters import parameter_problems
    from motiontune.tracking.registry import generate_with_registered_motion

    options = sample_generation_options()
    assert not [p for p in parameter_problems({"video": VIDEO, "generate": options}) if "unknown key" in p]

    seen = []

    def recording(backbone, artifact, prompts, config, reference=None):
        seen.append(config)
        return [np.zeros((8, 64, 64, 3), dtype=np.uint8) for _ in prompts]

    monkeypatch.setattr(generation, "generate_with_motion", recording)  # predict imports it when called
    generate_with_registered_motion(lora_motion, ["a dog"], backbone_params, options)
    mlflow.pyfunc.load_model(lora_motion).predict(["a dog"], params=options)
    assert len(seen) == 2
    for config in seen:
        assert {name: getattr(config, name) for name in options} == options
