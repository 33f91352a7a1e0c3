"""`kedro run --pipelines=customize` in a temporary copy of the project, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SMALL_RUN = "train.steps=3,train.checkpoint_every=2,encode.inversion_steps=3,generate.steps=3,evaluate.tracker_options.grid_size=8"


def copy_project(source: Path, target: Path) -> Path:
    for part in ("pyproject.toml", "src", "conf/base", "data/01_raw", "data/06_models/backbones", "data/06_models/clip"):
        destination = target / part
        if (source / part).is_dir():
            shutil.copytree(source / part, destination, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, destination)
    (target / "conf/local").mkdir(parents=True)
    return target


def kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    # As a user runs it: no MLFLOW_* left in this process's environment by other tests (registry URI, experiment).
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "200"})
    command = [sys.executable, "-m", "kedro", "run", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_customize_runs_end_to_end_and_is_tracked(project_root, tmp_path):
    project = copy_project(project_root, tmp_path / "project")
    result = kedro(project, "--pipelines=customize", f"--params={SMALL_RUN}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    names = ["ball_right", "camera_pan", "orbit_counterclockwise", "zigzag_right"]
    for name in names:
        manifest = json.loads((project / "data/06_models/motions" / name / "motion.json").read_text())
        assert manifest["method"] == "motion_embeddings" and manifest["train"]["steps"] == 3
        assert (project / "data/06_models/motions" / name / "motion.safetensors").is_file()
        assert len(list((project / "data/07_model_output/motions" / name).glob("*.mp4"))) == 2
        metrics = json.loads((project / "data/08_reporting" / name / "metrics.json").read_text())
        assert len(metrics["videos"]) == 2 and "motion_fidelity" in metrics["mean"]
        assert "clip_text_similarity" in metrics["mean"]  # the world CLIP is the default

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("motiontune")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.steps"] == "3" and run.data.params["train.method"] == "motion_embeddings"
    history = client.get_metric_history(run.info.run_id, "ball_right/loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert "ball_right/motion_fidelity" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "motions/ball_right")}
    assert artifacts == {"motions/ball_right/motion.json", "motions/ball_right/motion.safetensors"}

    # README's notebook example works on what the run left, as written (fewer steps, no bar).
    readme = (project_root / "README.md").read_text(encoding="utf-8")
    example = readme.split("The library works without Kedro, e.g. in a notebook:", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "GenerationConfig()" in example
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(project)
    try:
        exec(example.replace("GenerationConfig()", "GenerationConfig(steps=3, progress_bar=False)"), namespace)
    finally:
        os.chdir(cwd)
    assert len(namespace["videos"]) == 1 and namespace["videos"][0].shape == (8, 32, 32, 3)


@pytest.mark.slow
def test_configuration_changes_the_run_and_bad_values_are_rejected(project_root, tmp_path):
    project = copy_project(project_root, tmp_path / "project")
    result = kedro(
        project, "--pipelines=customize",
        f"--params={SMALL_RUN},ingest.entries=[camera_pan],video.num_frames=4,video.height=32,video.width=48,train.motion_embeddings.blocks=deep,generate.noise_init=random",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (project / "data/06_models/motions").iterdir() if (p / "motion.json").exists()) == ["camera_pan"]
    manifest = json.loads((project / "data/06_models/motions/camera_pan/motion.json").read_text())
    assert (manifest["num_frames"], manifest["height"], manifest["width"]) == (4, 32, 48)
    # the default backbone's widest (64-channel) motion modules: down blocks 1 and 2 one each, up blocks 0 and 1 two each
    assert len(manifest["blocks"]) == 6 and all(".motion_modules." in block for block in manifest["blocks"])

    bad = kedro(project, "--pipelines=customize", "--params=generate.debias=sideways,train.method=dreambooth")
    assert bad.returncode != 0
    output = bad.stdout + bad.stderr
    assert "generate.debias: 'sideways' is not one of" in output
    assert "train.method: 'dreambooth' is not one of" in output


ANIMATEDIFF = "data/06_models/backbones/tiny-animatediff"
ZEROSCOPE_LAYOUT = "data/06_models/backbones/world-t2v"


@pytest.mark.slow
@pytest.mark.parametrize(("backbone", "family"), [(ZEROSCOPE_LAYOUT, "unet3d"), (ANIMATEDIFF, "animatediff")])
@pytest.mark.parametrize("method", ["motion_embeddings", "vmc", "motionmatcher", "motiondirector"])
def test_every_method_customizes_through_the_same_pipeline(project_root, tmp_path, method, backbone, family):
    """On a ZeroScope-family backbone folder and on a saved AnimateDiffPipeline folder."""
    project = copy_project(project_root, tmp_path / "project")
    params = f"{SMALL_RUN},ingest.entries=[ball_right],train.method={method},train.steps=2,backbone.pretrained_model={backbone}"
    _check_customized(project, params, method, family)


@pytest.mark.slow
def test_stable_diffusion_plus_a_motion_adapter_customizes_through_the_same_pipeline(project_root, tmp_path):
    from diffusers import AnimateDiffPipeline

    from motiontune.backbone.tiny import save_stable_diffusion_and_adapter

    project = copy_project(project_root, tmp_path / "project")
    sd_dir, adapter_dir = save_stable_diffusion_and_adapter(
        AnimateDiffPipeline.from_pretrained(project_root / ANIMATEDIFF), project / "data/06_models/backbones/sd-parts"
    )
    params = (f"{SMALL_RUN},ingest.entries=[ball_right],train.method=motiondirector,train.steps=2,"
              f"backbone.pretrained_model={sd_dir.relative_to(project)},backbone.motion_adapter={adapter_dir.relative_to(project)}")
    manifest = _check_customized(project, params, "motiondirector", "animatediff")
    assert manifest["backbone"]["motion_adapter"] == str(adapter_dir.relative_to(project))


def _check_customized(project: Path, params: str, method: str, family: str) -> dict:
    """Run customize with ``params``; check the motion, its videos, the MLflow run and the registered version."""
    result = kedro(project, "--pipelines=customize", f"--params={params}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = json.loads((project / "data/06_models/motions/ball_right/motion.json").read_text())
    assert manifest["method"] == method and manifest["train"]["steps"] == 2
    assert manifest["backbone"]["family"] == family
    assert len(list((project / "data/07_model_output/motions/ball_right").glob("*.mp4"))) == 2
    import mlflow

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # not a registry another test set globally
    (run,) = client.search_runs([client.get_experiment_by_name("motiontune").experiment_id])
    assert run.data.params["train.method"] == method
    assert run.data.tags["method"] == method
    (version,) = client.search_model_versions("name='motion-ball_right'")
    assert version.tags["backbone_family"] == family and version.tags["method"] == method
    return manifest
