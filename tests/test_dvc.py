"""dvc.yaml: the stages call the Kedro pipelines in order, read their params from conf/base, own no file git
tracks, and a fresh clone (no DVC cache, no remote) reproduces offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

STAGES = ["ingest", "encode", "train", "generate", "evaluate"]
# Measured once and committed (an hour of CPU training, the benchmark): `dvc repro` verifies them, never reruns them.
FROZEN_STAGES = ["world_backbone_world_t2v", "world_backbone", "world_clip", "world_benchmark"]
# A stage that runs another stage's pipeline in a Kedro environment of its own (conf/<env>): stage -> (pipeline, env).
ENVIRONMENT_STAGES = {"world_backbone_world_t2v": ("world_backbone", "world_t2v")}
# What a `git clone` of the repository holds that the pipeline needs (plus the git-tracked .gitkeep files).
CLONE_PARTS = (
    "pyproject.toml", "src", "conf/base", "conf/world_t2v", "data/01_raw", "data/06_models/backbones", "data/06_models/clip",
    "data/08_reporting/world_backbone", "data/08_reporting/world_backbone_world_t2v", "data/08_reporting/world_clip", "data/08_reporting/world_benchmark",
    "dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore", "conf/local/.gitkeep",
)
TINY = {
    "parameters_ingest.yml": {"ingest": {"entries": ["ball_right"]}},
    "parameters_encode.yml": {"encode": {"inversion_steps": 2, "progress_bar": False}},
    "parameters_train.yml": {"train": {"steps": 2, "checkpoint_every": 0, "progress_bar": False, "motion_embeddings": {"blocks": "deep"}}},
    "parameters_generate.yml": {"generate": {"steps": 2, "progress_bar": False}},
    "parameters_evaluate.yml": {"evaluate": {"tracker_options": {"grid_size": 8}}},
}


@pytest.fixture(scope="module")
def dvc_yaml(project_root):
    return yaml.safe_load((project_root / "dvc.yaml").read_text())


def _outs(stage: dict, cached_only: bool = False) -> list[str]:
    """A stage's outputs; ``cached_only``: those in DVC's cache (``cache: false`` ones are committed to git)."""
    paths = []
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key, []):
            path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            if not cached_only or (options or {}).get("cache", True):
                paths.append(path)
    return paths


def _merge(target: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def fresh_clone(source: Path, target: Path, tiny: bool = False) -> Path:
    """A committed git repository holding what a clone of ``source`` holds; no DVC cache, no outputs."""
    for part in CLONE_PARTS:
        destination = target / part
        if (source / part).is_dir():
            shutil.copytree(source / part, destination, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, destination)
    for keep in source.glob("data/*/.gitkeep"):
        (target / keep.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (target / keep.relative_to(source)).touch()
    if tiny:
        for name, update in TINY.items():
            path = target / "conf/base" / name
            params = yaml.safe_load(path.read_text())
            _merge(params, update)
            path.write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], cwd=target, check=True)
    return target


def run(project: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1", "KEDRO_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "COLUMNS": "200",
        # `kedro` of this interpreter, and the clone's own sources rather than the editable install's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(project / "src"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
    }
    return subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def dvc(project: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return run(project, sys.executable, "-m", "dvc", *args, timeout=timeout)


def test_stages_call_the_kedro_pipelines_with_existing_deps_and_params(project_root, dvc_yaml):
    from motiontune.pipeline_registry import register_pipelines

    stages = dvc_yaml["stages"]
    assert list(stages) == STAGES + FROZEN_STAGES
    assert [name for name, stage in stages.items() if stage.get("frozen")] == FROZEN_STAGES
    pipelines = register_pipelines()
    produced = {path for stage in stages.values() for path in _outs(stage)}
    for name, stage in stages.items():
        pipeline, env = ENVIRONMENT_STAGES.get(name, (name, None))
        assert stage["cmd"].startswith(f"kedro run --pipelines={pipeline}" + (f" --env {env}" if env else "")) and pipeline in pipelines
        if env:  # its parameters are the environment's
            assert any(f"conf/{env}/" in next(iter(entry)) for entry in stage["params"]), name
        for dep in stage["deps"]:
            assert (project_root / dep).exists() or dep in produced, f"{name}: dep {dep} neither in the repository nor a stage output"
        for entry in stage["params"]:
            (path, keys), = entry.items()
            params = yaml.safe_load((project_root / path).read_text())
            assert all(key in params for key in keys), f"{name}: {path} lacks {keys}"
    # no params.yaml: DVC would template dvc.yaml with it and `-S key=value` would edit it, unseen by Kedro
    assert not (project_root / "params.yaml").exists()
    # the code a stage runs is among its deps
    for name in STAGES + FROZEN_STAGES:
        assert f"src/motiontune/pipelines/{ENVIRONMENT_STAGES.get(name, (name,))[0]}" in stages[name]["deps"]
    assert "train" in yaml.safe_load((project_root / "conf/base/parameters_train.yml").read_text())


def test_outputs_are_not_tracked_by_git_and_metrics_are_not_ignored(project_root, dvc_yaml):
    """DVC refuses a cached output that overlaps a git-tracked file (data/06_models/backbones, the .gitkeep files)."""
    for name, stage in dvc_yaml["stages"].items():
        for out in _outs(stage, cached_only=True):
            tracked = subprocess.run(["git", "ls-files", "--", out], cwd=project_root, capture_output=True, text=True, check=True).stdout
            assert tracked == "", f"{name}: output {out} overlaps git-tracked files {tracked.split()}"
    committed = [
        "data/08_reporting/metrics_summary.json", "data/08_reporting/training_summary.json", "data/08_reporting/loss_history/a.csv",
        "data/01_raw/big.mp4.dvc", "data/08_reporting/world_benchmark/summary.md", "data/08_reporting/world_backbone/competence.json",
        "data/08_reporting/world_clip/training_summary.json", "data/06_models/clip/world-clip/model.safetensors",
    ]
    ignored = ["data/06_models/motions/a/motion.json", "data/07_model_output/registry/a/v1/00_x.mp4", "data/06_models/checkpoints/a/x"]
    check = subprocess.run(["git", "check-ignore", "--no-index", *committed, *ignored], cwd=project_root, capture_output=True, text=True)
    assert check.stdout.split() == ignored
    assert "__pycache__/" in (project_root / ".dvcignore").read_text().split()


def test_fresh_clone_lists_the_stages_in_order(project_root, tmp_path):
    project = fresh_clone(project_root, tmp_path / "clone")
    dag = dvc(project, "dag", "--dot")
    assert dag.returncode == 0, dag.stderr
    edges = {tuple(part.strip().strip('"') for part in line.strip().rstrip(";").split("->")) for line in dag.stdout.splitlines() if "->" in line}
    assert {("ingest", "encode"), ("encode", "train"), ("train", "generate"), ("generate", "evaluate")} <= edges
    nodes = [line.strip().rstrip(";").strip('"') for line in dag.stdout.splitlines() if line.strip().startswith('"') and "->" not in line]
    assert [node for node in nodes if node in STAGES] == STAGES  # DVC lists them in the order it runs them
    assert sorted(nodes) == sorted(STAGES + FROZEN_STAGES)
    # nothing is built yet: every stage is out of date (`dvc repro --dry` cannot tell more before the first
    # run: it stops at encode, whose input the dry run of ingest does not create)
    status = dvc(project, "status", "--json")
    assert status.returncode == 0, status.stderr
    changes = json.loads(status.stdout)
    # this clone has no dvc.lock, so the frozen stages are listed too (they are only ever verified, never run)
    assert sorted(changes) == sorted(STAGES + FROZEN_STAGES)
    train_outs = next(change["changed outs"] for change in changes["train"] if "changed outs" in change)
    assert train_outs["data/06_models/motions"] == "deleted"


@pytest.mark.slow
def test_fresh_clone_reproduces_offline_and_reruns_only_what_a_param_changes(project_root, tmp_path):
    import mlflow

    project = fresh_clone(project_root, tmp_path / "clone", tiny=True)
    start = time.monotonic()
    first = dvc(project, "repro")
    seconds = time.monotonic() - start
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    print(f"dvc repro of the tiny clone: {seconds:.0f} s")
    assert (project / "data/06_models/motions/ball_right/motion.json").is_file()
    assert len(list((project / "data/07_model_output/motions/ball_right").glob("*.mp4"))) == 2
    summary = json.loads((project / "data/08_reporting/metrics_summary.json").read_text())
    assert "motion_fidelity" in summary["motions"]["ball_right"]
    assert (project / "data/08_reporting/loss_history/ball_right.csv").read_text().splitlines()[0] == "step,loss"
    metrics = dvc(project, "metrics", "show", "--json")
    assert "metrics_summary.json" in metrics.stdout, metrics.stdout + metrics.stderr

    again = dvc(project, "repro")
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout

    # one training parameter: train is out of date, ingest and encode are not; train's new outputs then make
    # generate and evaluate rerun (a dry run cannot know that yet). As an experiment, which keeps the MLflow run
    # and registers a new version.
    params = project / "conf/base/parameters_train.yml"
    changed = yaml.safe_load(params.read_text())
    changed["train"]["steps"] = 3
    params.write_text(yaml.safe_dump(changed, sort_keys=False))
    assert sorted(json.loads(dvc(project, "status", "--json").stdout)) == ["train"]
    subprocess.run(["git", "checkout", "-q", "--", "conf/base/parameters_train.yml"], cwd=project, check=True)
    start = time.monotonic()
    experiment = dvc(project, "exp", "run", "-S", "conf/base/parameters_train.yml:train.steps=3")
    print(f"dvc exp run (train, generate, evaluate): {time.monotonic() - start:.0f} s")
    assert experiment.returncode == 0, experiment.stdout[-4000:] + experiment.stderr[-4000:]
    assert [line.split("'")[1] for line in experiment.stdout.splitlines() if line.startswith("Running stage")] == ["train", "generate", "evaluate"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}", registry_uri=f"sqlite:///{project / 'mlflow.db'}")
    versions = {str(v.version): v for v in client.search_model_versions("name='motion-ball_right'")}
    assert sorted(versions) == ["1", "2"] and versions["2"].tags["train_steps"] == "3"
    assert yaml.safe_load(params.read_text())["train"]["steps"] == 3
    runs = client.search_runs([client.get_experiment_by_name("motiontune").experiment_id])
    assert len(runs) == 5 + 3 and all(run.info.status == "FINISHED" for run in runs)
