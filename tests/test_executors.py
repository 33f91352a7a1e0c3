"""Independent jobs on an executor: local (in process) or Ray tasks on a local Ray cluster (issue 19).

The Ray tests start one local instance (2 CPUs, no dashboard) for this module. Jobs defined here are sent to the
workers by value (cloudpickle), so the workers need no access to the tests folder.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from motiontune.backbone.loading import BackboneSource
from motiontune.benchmark import BenchmarkMethod, BenchmarkReference, run_benchmark, train_and_generate
from motiontune.executors import Job, LocalExecutor, RayConfig, RayExecutor, executor_problems
from motiontune.sampling.features import encode_reference
from motiontune.metrics.configured import MetricModels
from motiontune.metrics.trackers import build_tracker
from motiontune.training.loop import CHECKPOINT_FILE, TrainingConfig
from motiontune.parameters import parameter_problems
from motiontune.generation.generate import GenerationConfig

ray = pytest.importorskip("ray", reason='the Ray executor tests need pip install -e ".[distributed]"')
pytestmark = pytest.mark.xdist_group("ray")  # one local Ray instance at a time on the CI machine

FRAMES, PIXELS = 4, 32


@pytest.fixture(scope="module")
def ray_instance():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tiny_backbone):
    frames = (np.random.default_rng(3).random((FRAMES, PIXELS, PIXELS, 3)) * 255).astype(np.uint8)
    frames[:, 8:16, 4:12] = (255, 0, 0)
    row = {"name": "clip", "num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "source_path": "clip.mp4",
           "source_sha256": "0" * 64, "train_prompt": "a red square moving right", "simplified_train_prompt": "a square moving right"}
    features = encode_reference(tiny_backbone, frames, row["train_prompt"], row["simplified_train_prompt"], 3, progress=False)
    return BenchmarkReference(name="clip", frames=frames, row=row, features=features, prompts=["a blue ball", "a cat"])


def benchmark(tiny_backbone, reference, executor, work_dir=None):
    methods = [BenchmarkMethod("Motion Embeddings", "motion_embeddings", {"blocks": "deep"}),
               BenchmarkMethod("MotionDirector", "motiondirector", {"rank": 4})]
    train = {"steps": 4, "learning_rate": 1e-2, "checkpoint_every": 2, "progress_bar": False}
    return run_benchmark(
        tiny_backbone, [reference], methods, train, GenerationConfig(steps=3, noise_init="blend", progress_bar=False),
        seeds=[0, 1], tracker=build_tracker("opencv_lk"), tracker_description="lk", static_threshold=2.0,
        models=MetricModels(), executor=executor, work_dir=work_dir,
    )


def test_the_benchmark_through_ray_equals_the_local_run(tiny_backbone, reference, ray_instance, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray worker with num_cpus 1 (Ray sets OMP_NUM_THREADS to it)
    try:
        local_results, local_videos = benchmark(tiny_backbone, reference, LocalExecutor())
    finally:
        torch.set_num_threads(threads)
    ray_results, ray_videos = benchmark(tiny_backbone, reference, RayExecutor(RayConfig()), tmp_path / "jobs")
    assert len(local_results) == 8 and sorted(local_videos) == sorted(ray_videos)
    for key, video in local_videos.items():
        assert np.array_equal(video, ray_videos[key]), key
    assert local_results.equals(ray_results)


def _log_attempt(log: Path, checkpoint: Path | None = None) -> None:
    """One line per attempt: the worker's pid and the step of the checkpoint it finds (0: none)."""
    step = 0
    if checkpoint is not None and checkpoint.exists():
        from safetensors import safe_open

        with safe_open(str(checkpoint), framework="pt") as handle:
            step = int(handle.metadata()["step"])
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}:{step}\n")


def killed_after_first_checkpoint(log: Path, marker: Path, **job: object) -> list[np.ndarray]:
    """The benchmark job, but its worker process SIGKILLs itself once its first checkpoint is on disk (first try only)."""
    checkpoint = Path(str(job["checkpoint_dir"])) / CHECKPOINT_FILE
    _log_attempt(log, checkpoint)
    if not marker.exists():
        def kill_when_checkpointed() -> None:
            while not checkpoint.exists():
                time.sleep(0.005)
            marker.write_text("killed", encoding="utf-8")
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=kill_when_checkpointed, daemon=True).start()
    return train_and_generate(**job)


def logged_job(log: Path, **job: object) -> list[np.ndarray]:
    _log_attempt(log)
    return train_and_generate(**job)


def test_a_killed_worker_is_retried_resumes_from_its_checkpoint_and_nothing_else_reruns(tiny_backbone, reference, ray_instance, tmp_path):
    source = BackboneSource.of(tiny_backbone)
    loop = TrainingConfig(steps=12, learning_rate=1e-2, checkpoint_every=2, progress_bar=False)
    common = {"backbone": source, "method": "motion_embeddings", "options": {"blocks": "deep"}, "loop": loop,
              "features": dict(reference.features), "row": dict(reference.row), "prompts": ["a cat"],
              "sampling": GenerationConfig(steps=3, noise_init="random", progress_bar=False)}
    logs = {name: tmp_path / f"{name}.log" for name in ("killed", "other", "unbroken")}
    executor = RayExecutor(RayConfig(max_retries=2))
    killed, other = executor.run([
        Job("killed", killed_after_first_checkpoint, {**common, "log": logs["killed"], "marker": tmp_path / "marker",
                                                      "checkpoint_dir": tmp_path / "killed"}),
        Job("other", logged_job, {**common, "log": logs["other"], "loop": replace(loop, seed=1), "checkpoint_dir": tmp_path / "other"}),
    ])
    (unbroken,) = executor.run([Job("unbroken", logged_job, {**common, "log": logs["unbroken"], "checkpoint_dir": tmp_path / "unbroken"})])
    assert (tmp_path / "marker").read_text(encoding="utf-8") == "killed"
    attempts = [line.split(":") for line in logs["killed"].read_text(encoding="utf-8").split()]
    assert len(attempts) == 2 and attempts[0][0] != attempts[1][0]  # retried once, in another worker process
    assert attempts[0][1] == "0" and int(attempts[1][1]) >= 2  # the retry found the checkpoint it resumes from
    assert len(logs["other"].read_text(encoding="utf-8").split()) == 1  # nothing else recomputed
    assert np.array_equal(killed[0], unbroken[0])  # the artifact, and so the video, of an unbroken run
    assert not np.array_equal(killed[0], other[0])


def failing_job(log: Path) -> None:
    _log_attempt(log)
    raise ValueError("train.steps: must be at least 1, got 0")


def test_a_jobs_own_error_fails_once_with_its_message(ray_instance, tmp_path):
    log = tmp_path / "failing.log"
    with pytest.raises(ValueError) as error:
        RayExecutor(RayConfig(max_retries=3)).run([Job("bad", failing_job, {"log": log})])
    assert str(error.value) == "train.steps: must be at least 1, got 0"
    assert len(log.read_text(encoding="utf-8").split()) == 1  # not retried


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_cluster_is_one_line_within_seconds_before_any_work(monkeypatch):
    address = f"127.0.0.1:{closed_port()}"
    started = time.perf_counter()
    problems = executor_problems("ray", {"address": address}, "benchmark")
    assert time.perf_counter() - started < 10
    assert len(problems) == 1 and problems[0].startswith(f"benchmark.executor: ray address '{address}' does not answer")
    monkeypatch.setenv("RAY_ADDRESS", address)  # Ray's own variable, when ray.address is null
    params = {"video": {"num_frames": 8, "height": 32, "width": 32, "fps": 8}, "benchmark": {"executor": "ray"}, "ray": {}}
    assert any("does not answer" in problem for problem in parameter_problems(params))
    assert executor_problems("local", {}, "benchmark") == []
    assert executor_problems("dask", {}, "benchmark") == ["benchmark.executor: 'dask' is not one of ['local', 'ray']"]
    assert executor_problems("ray", {"adress": "x"}, "benchmark") == ["ray.adress: unknown key (did you mean 'address'?)"]


def test_train_and_generate_of_a_manifest_through_ray_equal_the_local_nodes(project_root, ray_instance, tmp_path):
    """train.executor / generate.executor: one job per manifest entry; the same motions and videos as in process."""
    import yaml

    from motiontune.pipelines.encode.nodes import encode_references
    from motiontune.pipelines.generate.nodes import generate_videos
    from motiontune.pipelines.ingest.nodes import ingest_references
    from motiontune.pipelines.train.nodes import train_motions

    video = {"num_frames": FRAMES, "height": PIXELS, "width": PIXELS, "fps": 8}
    backbone = {"pretrained_model": str(project_root / "data/06_models/backbones/tiny-t2v"), "device": "cpu", "dtype": "float32"}
    manifest = yaml.safe_load((project_root / "data/01_raw/manifest.yml").read_text(encoding="utf-8"))
    ingest = {"manifest_dir": str(project_root / "data/01_raw"), "entries": ["ball_right", "orbit_counterclockwise"], "frames_fps": 8,
              "resample_to_fps": True, "rules": {"min_fps": 1.0, "max_fps": 240.0, "min_side": 16, "max_side": 8192}}
    clips, metadata = ingest_references(manifest, video, ingest)
    lazy = lambda values: {key: (lambda value=value: value) for key, value in values.items()}  # noqa: E731
    features = encode_references(lazy(clips), metadata, backbone, {"inversion_steps": 3, "progress_bar": False})
    outcomes = {}
    threads = torch.get_num_threads()
    for executor in ("local", "ray"):
        train = {"method": "motiondirector", "steps": 3, "seed": 0, "learning_rate": 1e-2, "checkpoint_every": 0,
                 "progress_bar": False, "checkpoint_root": str(tmp_path / executor), "motiondirector": {"rank": 4},
                 "executor": executor}
        generate = {"seed": 0, "steps": 3, "progress_bar": False, "executor": executor}
        torch.set_num_threads(1)  # the threads of a Ray worker with num_cpus 1
        try:
            artifacts, _ = train_motions(lazy(features), metadata, backbone, train, {})
            videos = generate_videos(lazy(artifacts), lazy(features), metadata, backbone, video, generate, {})
        finally:
            torch.set_num_threads(threads)
        outcomes[executor] = (artifacts, videos)
    (local_artifacts, local_videos), (ray_artifacts, ray_videos) = outcomes["local"], outcomes["ray"]
    assert sorted(ray_artifacts) == ["ball_right", "orbit_counterclockwise"] and sorted(ray_videos) == sorted(local_videos)
    for name, artifact in local_artifacts.items():
        assert artifact.tensors.keys() == ray_artifacts[name].tensors.keys()
        assert all(torch.equal(tensor, ray_artifacts[name].tensors[key]) for key, tensor in artifact.tensors.items()), name
    assert all(np.array_equal(clip.frames, ray_videos[key].frames) for key, clip in local_videos.items())


def test_the_world_benchmark_through_ray_equals_the_local_run(tiny_backbone, ray_instance, tmp_path):
    from motiontune.world import AnalyserConfig, ScoringConfig, WorldSpec
    from motiontune.world_models.benchmark import CaseSpec, Control, WorldBenchmarkConfig, benchmark_cases, run_world_benchmark

    spec = WorldSpec(height=32, width=32)
    config = WorldBenchmarkConfig(reference_seed=7, cases=(CaseSpec("translate", {"direction": "right", "speed": "fast"}),),
                                  targets_per_case=1, seeds=(0,), inversion_steps=2)
    cases = benchmark_cases(spec, config)

    def run(executor, work_dir):
        return run_world_benchmark(
            tiny_backbone, spec, cases, [BenchmarkMethod("Motion Embeddings", "motion_embeddings", {"blocks": "deep"})],
            [Control("Backbone + inversion", {"noise_init": "inversion"})],
            {"method": "motion_embeddings", "steps": 2, "checkpoint_every": 1, "progress_bar": False},
            GenerationConfig(steps=2, progress_bar=False), config, AnalyserConfig(), ScoringConfig(),
            build_tracker("opencv_lk"), 2.0, progress=False, work_dir=work_dir, executor=executor)

    threads = torch.get_num_threads()
    # The threads of a Ray worker with num_cpus 1, also for what the driver computes (the references' inversion).
    torch.set_num_threads(1)
    try:
        local, local_videos = run(LocalExecutor(), None)
        through_ray, ray_videos = run(RayExecutor(RayConfig()), tmp_path / "runs")
    finally:
        torch.set_num_threads(threads)
    assert len(local) == 2 and local.equals(through_ray)
    differ = {key: int(np.abs(video.astype(int) - ray_videos[key].astype(int)).max()) for key, video in local_videos.items()
              if not np.array_equal(video, ray_videos[key])}
    assert not differ, differ
    assert not (tmp_path / "runs").exists()  # the work folder goes once the benchmark completes
