"""Compare methods on the same references and prompts: methods x motions x prompts x seeds, one table.

The summary follows seed 002 Table 1 (text similarity, motion fidelity, temporal consistency, FID),
each a mean over every generated video of the method; metrics that could not be computed are n/a.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from motiontune.backbone.loading import Backbone, BackboneSource, backbone_in_process
from motiontune.executors import Executor, Job, LocalExecutor, job_work_dir
from motiontune.metrics.configured import MetricModels
from motiontune.metrics.evaluation import evaluate_motion
from motiontune.metrics.trackers import Tracker
from motiontune.training.customize import learn_motion, training_config_for
from motiontune.training.loop import TrainingConfig
from motiontune.generation.generate import GenerationConfig, generate_with_motion, video_id

logger = logging.getLogger(__name__)

# (column in the summary, metric key in the reports, higher is better)
TABLE_COLUMNS = (
    ("Text Similarity", "clip_text_similarity", True),
    ("Motion Fidelity", "motion_fidelity", True),
    ("Temporal Consistency", "temporal_consistency", True),
    ("FID", "fid", False),
)


@dataclass(frozen=True)
class BenchmarkMethod:
    """One row of the comparison: a method with its options and loop overrides."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    generate: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkReference:
    """A reference clip with its metadata row, cached features and target prompts."""

    name: str
    frames: np.ndarray  # (F, H, W, 3) uint8
    row: Mapping[str, Any]
    features: Mapping[str, Any]
    prompts: Sequence[str]


def train_and_generate(
    backbone: Backbone | BackboneSource,
    method: str,
    options: Mapping[str, Any],
    loop: TrainingConfig,
    features: Mapping[str, Any],
    row: Mapping[str, Any],
    prompts: Sequence[str],
    sampling: GenerationConfig,
    checkpoint_dir: Path | None = None,
) -> list[np.ndarray]:
    """One benchmark job: learn ``method`` on one reference and generate its ``prompts``; uint8 videos
    (F, H, W, 3). ``checkpoint_dir``: where training checkpoints go, so a retried job resumes."""
    model = backbone_in_process(backbone)  # once, for both calls
    artifact, _ = learn_motion(model, method, options, loop, features, row, checkpoint_dir)
    return generate_with_motion(model, artifact, prompts, sampling, features)


def run_benchmark(
    backbone: Backbone,
    references: Sequence[BenchmarkReference],
    methods: Sequence[BenchmarkMethod],
    train_params: Mapping[str, Any],
    generation: GenerationConfig,
    seeds: Sequence[int],
    tracker: Tracker,
    tracker_description: str,
    static_threshold: float,
    models: MetricModels,
    executor: Executor | None = None,
    work_dir: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Train, generate and evaluate every (method, reference, seed); ``train_params`` are the ``train``
    parameters (loop settings per method as in :func:`training_config_for`). Returns one row per generated video
    (columns method, motion, seed, prompt + metrics) and the videos keyed ``<method>/<seed>/<motion>/<NN>_<prompt>``.

    The (method, seed, reference) jobs are independent and go to ``executor`` (local by default); an executor
    outside this process gets the backbone's source and loads it there. ``work_dir``: each job's training
    checkpoints under ``<work_dir>/<method>/<seed>/<reference>``, so a retried job resumes (removed once every job
    has finished). Evaluation runs here.
    """
    executor = executor or LocalExecutor()
    handle = executor.job_backbone(backbone)
    jobs, cells = [], []
    for entry in methods:
        for seed in seeds:
            method_params = {**train_params, "method": entry.method, entry.method: entry.options, **entry.train}
            loop = replace(training_config_for(method_params), seed=seed)
            sampling = replace(generation, **{**entry.generate, "seed": seed})
            for reference in references:
                key = f"{label_slug(entry.label)}/{seed}/{reference.name}"
                jobs.append(Job(key, train_and_generate, {
                    "backbone": handle, "method": entry.method, "options": dict(entry.options), "loop": loop,
                    "features": dict(reference.features), "row": dict(reference.row), "prompts": list(reference.prompts),
                    "sampling": sampling, "checkpoint_dir": job_work_dir(work_dir, key, "checkpoints"),
                }))
                cells.append((entry, seed, reference))
    logger.info("benchmark: %d jobs on the %s executor", len(jobs), executor.name)
    rows: list[dict[str, Any]] = []
    videos: dict[str, np.ndarray] = {}
    for (entry, seed, reference), outputs in zip(cells, executor.run(jobs)):
        generated = {video_id(reference.name, i, p): (p, v) for i, (p, v) in enumerate(zip(reference.prompts, outputs))}
        report = evaluate_motion(
            reference.frames, generated, tracker, tracker_description, static_threshold,
            clip_scorer=models.clip_scorer, temporal_pairs=models.temporal_pairs,
            fid_features=models.fid_features, fid_reference_images=models.fid_reference_images, skipped=models.skipped,
        )
        fid = report["mean"].get("fid")
        for video in report["videos"]:
            rows.append({"method": entry.label, "motion": reference.name, "seed": seed, **video, "fid": fid})
        for key, (_, frames) in generated.items():
            videos[f"{label_slug(entry.label)}/{seed}/{key}"] = frames
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)  # every job finished: its checkpoints are not needed
    return pd.DataFrame(rows), videos


def label_slug(label: str) -> str:
    """``MotionMatcher (r=8)`` -> ``motionmatcher-r-8``: a label as a path part."""
    return "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split())


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Seed 002 Table 1 layout: one row per method, mean of each metric over all its videos (NaN = n/a)."""
    summary = pd.DataFrame({"Method": pd.unique(results["method"])})
    for column, key, _ in TABLE_COLUMNS:
        if key in results and results[key].notna().any():
            means = results.groupby("method", sort=False)[key].mean()
            summary[column] = summary["Method"].map(means)
        else:
            summary[column] = np.nan
    summary["Videos"] = summary["Method"].map(results.groupby("method", sort=False).size())
    return summary


def summary_markdown(summary: pd.DataFrame, digits: int = 4) -> str:
    """Markdown with the direction of each metric in the header, as in the papers' tables."""
    arrows = {column: ("\u2191" if higher else "\u2193") for column, _, higher in TABLE_COLUMNS}
    header = ["Method"] + [f"{c} {arrows[c]}" for c, _, _ in TABLE_COLUMNS] + ["Videos"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for record in summary.to_dict(orient="records"):
        cells = [str(record["Method"])]
        for column, _, _ in TABLE_COLUMNS:
            value = record[column]
            cells.append("n/a" if pd.isna(value) else f"{value:.{digits}f}")
        cells.append(str(int(record["Videos"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def methods_from_params(items: Sequence[Mapping[str, Any]], train: Mapping[str, Any]) -> list[BenchmarkMethod]:
    """Benchmark rows from ``[{label, method, options, train, generate}]``; options merge over ``train.<method>``."""
    return [
        BenchmarkMethod(
            label=item["label"], method=item["method"],
            options={**(train.get(item["method"]) or {}), **(item.get("options") or {})},
            train=dict(item.get("train") or {}), generate=dict(item.get("generate") or {}),
        )
        for item in items
    ]


def bar_chart(title: str, labels: Sequence[str], means: Sequence[float], spreads: Sequence[float]) -> np.ndarray:
    """A bar per label with its spread as error bar, rendered to an RGB image (H, W, 3) uint8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(3.0, 1.2 * len(labels)), 3.0), dpi=100)
    axis.bar(range(len(labels)), list(means), yerr=list(spreads), capsize=4, color="#4C72B0")
    axis.set_xticks(range(len(labels)), list(labels), rotation=20, ha="right", fontsize=8)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


def metric_bar_plots(results: pd.DataFrame) -> dict[str, np.ndarray]:
    """One bar chart per computed metric (mean and standard deviation over videos), as RGB images."""
    plots: dict[str, np.ndarray] = {}
    for column, key, higher in TABLE_COLUMNS:
        if key not in results or not results[key].notna().any():
            continue
        grouped = results.groupby("method", sort=False)[key]
        means, spreads = grouped.mean(), grouped.std(ddof=0).fillna(0.0)
        plots[key] = bar_chart(f"{column} ({'higher' if higher else 'lower'} is better)", list(means.index), means.values, spreads.values)
    return plots
