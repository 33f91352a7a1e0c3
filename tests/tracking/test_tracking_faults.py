"""Tracking faults (issue 8): an unreachable or locked MLflow backend costs one warning, not the run; two runs
at once keep their outputs and both are recorded.

The fast tests drive a small Kedro pipeline the way ``KedroSession.run`` does (the same hook calls, the real
``SequentialRunner``, kedro-mlflow's ``MlflowHook`` behind our ``ResilientMlflowHook``); its nodes call the
library's tracking functions. The slow test runs two ``kedro run`` processes at once on one project.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import kedro.framework.project  # noqa: F401 - Kedro configures logging on import: before caplog attaches
import pandas as pd
import pytest
import torch

LOCK_HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""

RUN_PARAMS = {
    "session_id": "test", "project_path": "", "env": "local", "kedro_version": "1.7.0", "tags": None, "from_nodes": None,
    "to_nodes": None, "node_names": None, "from_inputs": None, "to_outputs": None, "load_versions": {},
    "extra_params": None, "pipeline_names": ["faults"], "namespace": None, "runner": "SequentialRunner",
}


@pytest.fixture(autouse=True)
def clean_tracking_state(monkeypatch, tmp_path):
    """Each test: its own working directory (MLflow puts artifacts under ./mlruns), no active run, tracking on;
    afterwards MLflow's URIs as they were (set_tracking_uri / set_registry_uri also write MLFLOW_* variables,
    which later subprocesses would inherit)."""
    import mlflow

    from motiontune.tracking import health

    monkeypatch.chdir(tmp_path)
    environment = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    health.resume()
    yield
    health.forget_active_runs()
    health.resume()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(environment)


class DatabaseLock:
    """Another process holding an exclusive transaction on a SQLite database, until ``release()``."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            self.process.wait(timeout=30)


def fake_artifact(name: str):
    from motiontune.methods.artifact import MotionArtifact

    manifest = {
        "method": "motion_embeddings", "method_version": 1, "backbone": {"id_or_path": "tiny", "revision": None, "unet_config_sha256": "0" * 64},
        "num_frames": 2, "height": 8, "width": 8, "blocks": [], "hyperparameters": {}, "inference_defaults": {},
        "train": {"steps": 2, "final_loss": 0.5}, "source_video": {"path": f"{name}.mp4", "sha256": "1" * 64},
        "train_prompt": "a ball", "created_at": "now",
    }
    return MotionArtifact(tensors={"block.query_key": torch.zeros(1, 2, 4)}, manifest=manifest)


def train_node(on_start=None):
    """Like train_motions: writes the motion, logs its training and registers it (all through the library)."""
    from motiontune.tracking.mlflow_logging import log_training
    from motiontune.tracking.registry import register_trained_motion

    def train(tiny: dict) -> dict:
        if on_start is not None:
            on_start()
        artifact = fake_artifact("ball")
        log_training("ball", artifact, [1.0, 0.5], 0.1)
        register_trained_motion("ball", artifact)
        return {"ball": {"final_loss": 0.5, "steps": tiny["steps"]}}

    return train


def evaluate_node(summary: dict) -> dict:
    from motiontune.tracking.mlflow_logging import log_evaluation

    metrics = {"videos": {}, "mean": {"motion_fidelity": 0.25}}
    log_evaluation("ball", metrics)
    return metrics


def small_run(project: Path, hook, on_train_start=None, extra_hooks=()) -> tuple[dict, float]:
    """One run of a two-node pipeline (train -> evaluate, JSON files on disk) with the hook calls of
    ``KedroSession.run``; returns the MLflow-free outputs read back from disk and the seconds it took."""
    from kedro.config import OmegaConfigLoader
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog
    from kedro.pipeline import node, pipeline
    from kedro.runner import SequentialRunner
    from kedro_datasets.json import JSONDataset
    from omegaconf.resolvers import oc

    conf = project / "conf"
    (conf / "base").mkdir(parents=True, exist_ok=True)
    (conf / "local").mkdir(exist_ok=True)
    shutil.copy2(Path(__file__).resolve().parents[2] / "conf/base/mlflow.yml", conf / "base/mlflow.yml")
    loader = OmegaConfigLoader(conf_source=str(conf), base_env="base", default_run_env="local",
                               custom_resolvers={"oc.env": oc.env}, config_patterns={"mlflow": ["mlflow*", "mlflow*/**"]})
    context = SimpleNamespace(config_loader=loader, project_path=project, _package_name="motiontune", _get_config_credentials=dict)

    manager = _create_hook_manager()
    for item in (hook, *extra_hooks):
        manager.register(item)
    start = time.monotonic()
    manager.hook.after_context_created(context=context)
    catalog = DataCatalog({
        "training_summary": JSONDataset(filepath=str(project / "data/training_summary.json")),
        "metrics": JSONDataset(filepath=str(project / "data/ball/metrics.json")),
    })
    catalog["params:tiny"] = {"steps": 2, "method": "motion_embeddings"}
    manager.hook.after_catalog_created(catalog=catalog, conf_catalog={}, conf_creds={}, parameters={}, save_version=None, load_versions={})
    faults = pipeline([
        node(train_node(on_train_start), "params:tiny", "training_summary", name="train"),
        node(evaluate_node, "training_summary", "metrics", name="evaluate"),
    ])
    run_params = {**RUN_PARAMS, "project_path": str(project)}
    manager.hook.before_pipeline_run(run_params=run_params, pipeline=faults, catalog=catalog)
    try:
        result = SequentialRunner().run(faults, catalog, manager)
    except Exception as error:
        manager.hook.on_pipeline_error(error=error, run_params=run_params, pipeline=faults, catalog=catalog)
        raise
    manager.hook.after_pipeline_run(run_params=run_params, run_result=result, pipeline=faults, catalog=catalog)
    seconds = time.monotonic() - start
    outputs = {
        "training_summary": json.loads((project / "data/training_summary.json").read_text()),
        "metrics": json.loads((project / "data/ball/metrics.json").read_text()),
    }
    return outputs, seconds


def tracking_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("motiontune")]


def assert_outputs_on_disk(outputs: dict) -> None:
    assert outputs["training_summary"] == {"ball": {"final_loss": 0.5, "steps": 2}}
    assert outputs["metrics"]["mean"] == {"motion_fidelity": 0.25}


def test_plugin_hook_is_replaced_by_the_resilient_wrapper(project_root):
    """settings.py disables kedro-mlflow's auto-registered hook (its metadata name is kedro_mlflow) and registers
    the wrapper, so exactly one MlflowHook tracks a run and it is ours."""
    from kedro.framework.hooks.manager import _create_hook_manager, _register_hooks, _register_hooks_entry_points
    from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

    from motiontune import settings
    from motiontune.pipelines.hooks import ResilientMlflowHook

    manager = _create_hook_manager()
    _register_hooks(manager, settings.HOOKS)
    _register_hooks_entry_points(manager, settings.DISABLE_HOOKS_FOR_PLUGINS)
    plugins = manager.get_plugins()
    assert not [p for p in plugins if isinstance(p, MlflowHook)]
    assert len([p for p in plugins if isinstance(p, ResilientMlflowHook)]) == 1


def test_healthy_backend_tracks_the_run_as_kedro_mlflow_does(tmp_path, monkeypatch, caplog):
    import mlflow

    from motiontune.pipelines.hooks import ResilientMlflowHook

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    caplog.set_level(logging.WARNING)
    outputs, _ = small_run(tmp_path, ResilientMlflowHook())

    assert_outputs_on_disk(outputs)
    assert tracking_warnings(caplog) == []
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("motiontune").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["tiny.steps"] == "2" and run.data.params["tiny.method"] == "motion_embeddings"
    assert run.data.tags["kedro_command"].startswith("kedro run")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "ball/loss")] == [0, 1]
    assert run.data.metrics["ball/motion_fidelity"] == 0.25
    version = client.get_model_version("motion-ball", "1")
    assert version.run_id == run.info.run_id


def test_unreachable_server_costs_one_warning_not_the_run(tmp_path, monkeypatch, caplog):
    """Before: kedro-mlflow raised in after_context_created after ~258 s of HTTP retries, nothing was written."""
    import mlflow

    from motiontune.pipelines.hooks import ResilientMlflowHook

    with socket.socket() as probe_socket:  # a port on which nothing listens
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    caplog.set_level(logging.WARNING)
    outputs, seconds = small_run(tmp_path, ResilientMlflowHook(probe_timeout_s=2))

    assert_outputs_on_disk(outputs)
    assert seconds < 30, f"the run waited {seconds:.0f} s on the unreachable server"
    (warning,) = tracking_warnings(caplog)
    assert f"MLflow tracking is off for this run: {uri} failed while connecting before the run" in warning
    assert "Not logged to MLflow: the run and all its parameters, metrics" in warning and "registered model versions" in warning
    assert mlflow.active_run() is None


def test_locked_database_at_start_costs_one_warning_not_the_run(tmp_path, monkeypatch, caplog):
    """Before: kedro-mlflow raised `database is locked` in after_context_created (after ~18 s), nothing was written."""
    import mlflow

    from motiontune.pipelines.hooks import ResilientMlflowHook

    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    lock = DatabaseLock(database)
    try:
        caplog.set_level(logging.WARNING)
        outputs, seconds = small_run(tmp_path, ResilientMlflowHook(probe_timeout_s=1, sqlite_timeout_s=1))
    finally:
        lock.release()

    assert_outputs_on_disk(outputs)
    assert seconds < 30
    (warning,) = tracking_warnings(caplog)
    assert f"MLflow tracking is off for this run: {uri} failed while connecting before the run" in warning
    assert "database is locked" in warning and "writes its outputs to disk" in warning
    assert mlflow.active_run() is None


def test_database_locked_mid_run_stops_tracking_with_one_warning(tmp_path, monkeypatch, caplog):
    """The run starts and logs its first node's parameters; then another process locks the database: the
    training node's logging fails, tracking is suspended (the registration and the later nodes are skipped
    without waiting again), the run finishes with its outputs, and the MLflow run stays RUNNING."""
    import mlflow

    from motiontune.pipelines.hooks import ResilientMlflowHook

    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    locks: list[DatabaseLock] = []
    caplog.set_level(logging.WARNING)
    try:
        outputs, seconds = small_run(tmp_path, ResilientMlflowHook(probe_timeout_s=1, sqlite_timeout_s=1),
                                     on_train_start=lambda: locks.append(DatabaseLock(database)))
    finally:
        for lock in locks:
            lock.release()

    assert_outputs_on_disk(outputs)
    assert seconds < 60
    warnings = tracking_warnings(caplog)
    assert [w for w in warnings if w.startswith(f"MLflow: training of 'ball' not logged to {uri}")], warnings
    (stopped,) = [w for w in warnings if w.startswith("MLflow tracking stopped for the rest of this run")]
    assert f"{uri} failed while logging training of 'ball'" in stopped and "database is locked" in stopped
    assert "stays RUNNING" in stopped and "writes its outputs to disk" in stopped
    assert not [w for w in warnings if "not registered" in w]  # skipped, not waited on
    assert mlflow.active_run() is None

    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("motiontune").experiment_id])
    assert run.info.status == "RUNNING" and run.data.params["tiny.steps"] == "2"
    assert "ball/motion_fidelity" not in run.data.metrics


def test_registration_failure_warns_and_carries_on(tmp_path, monkeypatch, caplog):
    """The registry call of the train node, with the registry unreachable (tracking fine): a warning naming the
    model and the registry URI, no exception, and tracking goes on for the rest of the run."""
    import mlflow

    from motiontune.tracking import health
    from motiontune.tracking.mlflow_logging import log_evaluation
    from motiontune.tracking.registry import register_trained_motion

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries (~4 min) are not under test
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        registry = f"http://127.0.0.1:{probe_socket.getsockname()[1]}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("registry-faults", artifact_location=(tmp_path / "mlruns").as_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)
    caplog.set_level(logging.WARNING)
    with mlflow.start_run(experiment_id=experiment) as run:
        assert register_trained_motion("ball", fake_artifact("ball")) is None
        assert health.suspended() is None
        log_evaluation("ball", {"mean": {"motion_fidelity": 0.25}})
    (warning,) = tracking_warnings(caplog)
    assert warning.startswith(f"MLflow: motion 'ball' not registered as motion-ball in {registry} (") and "saved on disk" in warning
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.metrics["ball/motion_fidelity"] == 0.25


def test_a_suspension_ends_with_the_run_it_stopped(tmp_path, caplog):
    """Outside Kedro (a notebook): after tracking was suspended in one run, the next MLflow run is tracked again."""
    import mlflow

    from motiontune.tracking import health
    from motiontune.tracking.mlflow_logging import log_evaluation

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.MlflowClient().create_experiment("notebook", artifact_location=(tmp_path / "mlruns").as_uri())
    first = mlflow.start_run(experiment_id=experiment)
    health.suspend(uri, "database is locked", "logging metrics")
    assert mlflow.active_run() is None and health.suspended().run_id == first.info.run_id
    log_evaluation("ball", {"mean": {"motion_fidelity": 0.5}})  # skipped
    with mlflow.start_run(experiment_id=experiment) as second:
        assert health.suspended() is None
        log_evaluation("ball", {"mean": {"motion_fidelity": 0.25}})
    client = mlflow.MlflowClient()
    assert client.get_run(second.info.run_id).data.metrics == {"ball/motion_fidelity": 0.25}
    assert client.get_run(first.info.run_id).data.metrics == {}


def test_a_run_reads_back_its_own_run_level_file_when_another_run_rewrites_it(tmp_path):
    """RunIsolationHooks: clip_metadata.csv-like files written by one node and read by a later one are read back
    as this run wrote them, though another run rewrote the file in between (the cross-run race of issue 8)."""
    from kedro.framework.hooks import hook_impl
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog
    from kedro.pipeline import node, pipeline
    from kedro.runner import SequentialRunner
    from kedro_datasets.json import JSONDataset
    from kedro_datasets.pandas import CSVDataset

    from motiontune.pipelines.hooks import RunIsolationHooks, RunSnapshotDataset

    table = tmp_path / "clip_metadata.csv"

    class OtherRunWritesBetweenNodes:
        @hook_impl
        def after_dataset_saved(self, dataset_name):
            if dataset_name == "clip_metadata":
                CSVDataset(filepath=str(table)).save(pd.DataFrame({"name": ["camera_pan"]}))

    def run(isolated: bool) -> list[str]:
        catalog = DataCatalog({
            "clip_metadata": CSVDataset(filepath=str(table)),
            "trained": JSONDataset(filepath=str(tmp_path / "trained.json")),
        })
        flow = pipeline([
            node(lambda: pd.DataFrame({"name": ["ball_right"]}), None, "clip_metadata", name="ingest"),
            node(lambda metadata: list(metadata["name"]), "clip_metadata", "trained", name="train"),
        ])
        manager = _create_hook_manager()
        manager.register(OtherRunWritesBetweenNodes())
        if isolated:
            RunIsolationHooks().before_pipeline_run(run_params={}, pipeline=flow, catalog=catalog)
            assert isinstance(catalog.get("clip_metadata"), RunSnapshotDataset)
            assert catalog.get("trained")._snapshot_enabled is False  # written, not read back: locked save only
        SequentialRunner().run(flow, catalog, manager)
        return json.loads((tmp_path / "trained.json").read_text())

    assert run(isolated=False) == ["camera_pan"]  # the race: this run trains the other run's motion
    assert run(isolated=True) == ["ball_right"]
    assert list(pd.read_csv(table)["name"]) == ["camera_pan"]  # the file holds what was written last


SMALL_RUN = "train.steps=2,train.checkpoint_every=0,encode.inversion_steps=2,generate.steps=2,evaluate.tracker_options.grid_size=8"


def copy_project(source: Path, target: Path) -> Path:
    for part in ("pyproject.toml", "src", "conf/base", "data/01_raw", "data/06_models/backbones", "data/06_models/clip"):
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)
    (target / "conf/local").mkdir(parents=True)
    return target


@pytest.mark.slow
def test_two_runs_on_different_motions_at_once_keep_their_outputs_and_are_both_tracked(project_root, tmp_path):
    """Two `kedro run --pipelines=customize` processes in one project, one SQLite store created by neither
    beforehand. Before: the second failed creating the store's tables (`duplicate column name: step`) or, with the
    store in place, trained from the other run's clip_metadata.csv (`no encoded features for 'ball_right'`)."""
    import mlflow

    project = copy_project(project_root, tmp_path / "project")
    uri = f"sqlite:///{project / 'mlflow.db'}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "PYTEST_"))}  # as a user runs it
    env.update({"MLFLOW_TRACKING_URI": uri, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "200", "OMP_NUM_THREADS": "1"})
    names = ["ball_right", "camera_pan"]
    processes = {
        name: subprocess.Popen([sys.executable, "-m", "kedro", "run", "--pipelines=customize", f"--params={SMALL_RUN},ingest.entries=[{name}]"],
                               cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in names
    }
    logs = {name: process.communicate(timeout=900)[0] for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, f"{name}:\n{logs[name][-4000:]}"
        assert not [word for word in ("MLflow tracking", "not logged", "not registered") if word in logs[name]], logs[name][-6000:]

    for name in names:
        manifest = json.loads((project / "data/06_models/motions" / name / "motion.json").read_text())
        assert Path(manifest["source_video"]["path"]).stem == name and manifest["train"]["steps"] == 2
        assert len(list((project / "data/07_model_output/motions" / name).glob("*.mp4"))) == 2
        assert len(json.loads((project / "data/08_reporting" / name / "metrics.json").read_text())["videos"]) == 2

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("motiontune").experiment_id])
    assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}
    by_motion = {run.data.params["ingest.entries"].strip("[]'\""): run for run in runs}
    assert sorted(by_motion) == names
    for name, run in by_motion.items():
        other = next(n for n in names if n != name)
        assert [m.step for m in client.get_metric_history(run.info.run_id, f"{name}/loss")] == [0, 1]
        assert f"{name}/motion_fidelity" in run.data.metrics and not [k for k in run.data.metrics if k.startswith(other)]
        (version,) = client.search_model_versions(f"name='motion-{name}'")
        assert version.run_id == run.info.run_id
    with sqlite3.connect(project / "mlflow.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
