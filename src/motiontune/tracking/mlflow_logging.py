"""Log motions, losses, videos and metrics to the active MLflow run.

A tracking failure (server down, database locked) must not lose a run whose outputs are already on disk,
so every call here warns and carries on; when the backend itself is down, tracking is suspended for the rest
of the run (``motiontune.tracking.health``) and the later calls are skipped.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from motiontune.io.clip import VideoClip
from motiontune.methods.artifact import MotionArtifact, save_motion_artifact
from motiontune.tracking import health

logger = logging.getLogger(__name__)


def _metric_key(*parts: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / only.
    return "/".join(re.sub(r"[^0-9A-Za-z_\-. ]", "_", part) for part in parts)


def _active_run() -> Any:
    """The active MLflow run, or None (none, or tracking suspended because the backend is down)."""
    if health.suspended() is not None:
        return None
    import mlflow

    return mlflow.active_run()


def _not_logged(what: str, error: BaseException) -> None:
    """Warn that ``what`` was not logged; suspend tracking if the backend itself is down (never raises)."""
    try:
        import mlflow

        uri = mlflow.get_tracking_uri()
        logger.warning("MLflow: %s not logged to %s (%s)", what, uri, health.describe_error(error))
        health.after_failure(what, error, uri)
    except Exception as other:  # noqa: BLE001
        logger.warning("MLflow: %s not logged (%s; %s)", what, error, other)


def log_training(name: str, artifact: MotionArtifact, loss_history: Sequence[float], seconds: float) -> None:
    """Loss history as a metric series, final loss and time, the artifact files and its method as tags."""
    try:
        if _active_run() is None:
            return
        import mlflow

        mlflow.log_metrics({_metric_key(name, "final_loss"): float(loss_history[-1]), _metric_key(name, "train_seconds"): seconds})
        # One batched call for the whole history: one row per step would be slow on the SQLite store.
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        key = _metric_key(name, "loss")
        metrics = [Metric(key, float(value), now, step) for step, value in enumerate(loss_history)]
        client = mlflow.MlflowClient()
        run_id = _active_run().info.run_id
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        mlflow.set_tags({_metric_key("motion", name, "method"): artifact.method, "backbone": artifact.manifest["backbone"]["id_or_path"]})
        mlflow.set_tags(_run_tags(name, artifact))
        with tempfile.TemporaryDirectory() as scratch:
            save_motion_artifact(Path(scratch) / name, artifact)
            mlflow.log_artifacts(str(Path(scratch) / name), artifact_path=f"motions/{name}")
    except Exception as error:  # noqa: BLE001 - tracking must never fail the run
        _not_logged(f"training of '{name}'", error)


def _run_tags(name: str, artifact: MotionArtifact) -> dict[str, str]:
    """Run tags: method, backbone UNet config hash, git commit, and per motion its source video's sha256 and path."""
    from motiontune.tracking.registry import git_commit

    sha256 = str(artifact.manifest["source_video"]["sha256"])
    return {
        "method": artifact.method,
        "backbone_unet_config_sha256": str(artifact.manifest["backbone"].get("unet_config_sha256")),
        "git_commit": git_commit(),
        _metric_key("motion", name, "source_video_sha256"): sha256,
        _metric_key("motion", name, "source_video_path"): str(artifact.manifest["source_video"]["path"]),
    }


def log_videos(videos: Mapping[str, VideoClip], artifact_dir: str = "videos") -> None:
    """Write the generated clips to a scratch folder and log them as run artifacts."""
    from motiontune.io.video import write_video

    try:
        if _active_run() is None:
            return
        import mlflow

        with tempfile.TemporaryDirectory() as scratch:
            for video_id, clip in videos.items():
                write_video(Path(scratch) / f"{video_id}.mp4", clip.frames, clip.fps)
            mlflow.log_artifacts(scratch, artifact_path=artifact_dir)
    except Exception as error:  # noqa: BLE001
        _not_logged(f"videos ({artifact_dir}/)", error)


def log_evaluation(name: str, metrics: Mapping[str, Any]) -> None:
    """Mean metrics of one motion, plus the whole metrics file as a JSON artifact."""
    try:
        if _active_run() is None:
            return
        import mlflow

        values = {_metric_key(name, key): float(value) for key, value in metrics["mean"].items() if value is not None}
        mlflow.log_metrics(values)
        mlflow.log_dict(dict(metrics), f"metrics/{name}/metrics.json")
    except Exception as error:  # noqa: BLE001
        _not_logged(f"metrics of '{name}'", error)


def log_benchmark(summary: Any, markdown: str) -> None:
    """Per-method means as ``benchmark/<method>/<metric>`` and the summary table as an artifact."""
    try:
        if _active_run() is None:
            return
        import math

        import mlflow

        for record in summary.to_dict(orient="records"):
            for column, value in record.items():
                if column != "Method" and isinstance(value, (int, float)) and not math.isnan(value):
                    mlflow.log_metric(_metric_key("benchmark", str(record["Method"]), column), float(value))
        mlflow.log_text(markdown, "benchmark/summary.md")
    except Exception as error:  # noqa: BLE001
        _not_logged("benchmark summary", error)
