"""Compare methods on the same references and prompts: methods x motions x prompts x seeds, one table.

The summary follows seed 002 Table 1 (text similarity, motion fidelity, temporal consistency, FID),
each a mean over every generated video of the method; metrics that could not be computed are n/a.

The runner here (:func:`method_run`, :func:`execute_runs`) also serves the world benchmark
(:mod:`motiontune.world_models.benchmark`): each run (reference, row label, seed) is a job for the executor, and
with a work folder its videos are stored as it finishes, so a rerun after a crash redoes only the runs that had
not (a run whose settings changed is redone).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from motiontune.backbone.loading import Backbone, BackboneSource, backbone_in_process
from motiontune.executors import Executor, Job, LocalExecutor, job_work_dir
from motiontune.io.atomic import write_atomically
from motiontune.methods.base import method_names
from motiontune.metrics.configured import MetricModels
from motiontune.metrics.evaluation import evaluate_motion
from motiontune.metrics.trackers import Tracker
from motiontune.training.customize import learn_motion, training_config_for
from motiontune.training.loop import TrainingConfig
from motiontune.generation.generate import GenerationConfig, generate_with_motion, video_id
from motiontune.sections import build_section

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

    def problems(self) -> list[str]:
        """Range errors of an entry of ``benchmark.methods`` (see :meth:`BenchmarkSettings.from_params`)."""
        problems = []
        if self.method not in method_names():
            problems.append(f"method: '{self.method}' is not one of {method_names()}")
        for key in ("options", "train", "generate"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, Mapping):
                problems.append(f"{key}: must be a mapping (or null), got {value!r}")
        return problems


# The shipped methods of ``benchmark.methods``: options are merged over train.<method>; train/generate override
# per method.
BENCHMARK_METHODS: tuple[BenchmarkMethod, ...] = (
    BenchmarkMethod(label="Motion Embeddings", method="motion_embeddings"),
    BenchmarkMethod(label="VMC", method="vmc"),
    BenchmarkMethod(label="MotionMatcher", method="motionmatcher"),
    BenchmarkMethod(label="MotionDirector", method="motiondirector"),
)


@dataclass(frozen=True)
class BenchmarkSettings:
    """The ``benchmark`` parameters (conf/base/parameters_benchmark.yml); defaults are its values. ``executor`` is
    also checked (with the ``ray`` section) by :func:`motiontune.executors.executor_problems`."""

    manifest_dir: str = "data/01_raw"
    # None = all entries of the benchmark manifest; or a list of names (a string is split on commas)
    entries: tuple[str, ...] | str | None = None
    seeds: tuple[int, ...] = (0,)
    executor: str = "local"  # local | ray: each (method, seed, reference) job as a Ray task (settings: parameters_executor.yml)
    # each job's training checkpoints (a folder every worker sees), so a retried job resumes; None = none kept
    work_dir: str | None = "data/07_model_output/benchmark_jobs"
    # loop overrides for every method, over the train section (CPU-sized; the papers use 400-800 steps);
    # checkpoint_every: into work_dir, so a job whose worker dies resumes (a finished benchmark removes them)
    train: dict[str, Any] = field(default_factory=lambda: {"steps": 30, "checkpoint_every": 10, "progress_bar": False})
    # sampling overrides, over the generate section (the method's own inference defaults still apply)
    generate: dict[str, Any] = field(default_factory=lambda: {"steps": 20, "progress_bar": False})
    methods: tuple[BenchmarkMethod, ...] = BENCHMARK_METHODS

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> BenchmarkSettings:
        """Build from the ``benchmark`` parameters (None = defaults; unknown keys, also of each method entry,
        and range errors raise)."""
        return build_section(cls, params, "benchmark")

    def method_params(self) -> list[dict[str, Any]]:
        """``methods`` as the mappings :func:`methods_from_params` reads."""
        return [
            {"label": item.label, "method": item.method, "options": item.options, "train": item.train, "generate": item.generate}
            for item in self.methods
        ]

    def problems(self) -> list[str]:
        problems = []
        seeds = self.seeds
        if not isinstance(seeds, tuple) or not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
            problems.append(f"seeds: must be a non-empty list of integers, got {seeds!r}")
        for key in ("train", "generate"):
            if not isinstance(getattr(self, key), Mapping):
                problems.append(f"{key}: must be a mapping of overrides, got {getattr(self, key)!r}")
        if not isinstance(self.methods, tuple) or not self.methods:
            problems.append(f"methods: must be a non-empty list of methods, got {self.methods!r}")
        return problems


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
    variant_samplings: Sequence[GenerationConfig] = (),
) -> list[np.ndarray]:
    """One benchmark job: learn ``method`` on one reference and generate its ``prompts``; uint8 videos
    (F, H, W, 3). ``checkpoint_dir``: where training checkpoints go, so a retried job resumes.
    ``variant_samplings``: the same learnt motion generated again with each of these (e.g. from random noise
    instead of the method's init); their videos follow, ``len(prompts)`` per sampling, in order."""
    model = backbone_in_process(backbone)  # once, for every call
    artifact, _ = learn_motion(model, method, options, loop, features, row, checkpoint_dir)
    videos = []
    for each in (sampling, *variant_samplings):
        videos.extend(generate_with_motion(model, artifact, prompts, each, features))
    return videos


# (reference or case name, row label, seed): one run of a benchmark, one job.
RunKey = tuple[str, str, int]


@dataclass(frozen=True)
class PlannedRun:
    """One run: its key, everything its videos depend on besides the key (their fingerprint in the work folder),
    and how to make its job (called only when the videos are not stored yet)."""

    key: RunKey
    settings: Mapping[str, Any]
    make_job: Callable[[], Job]


def run_name(key: RunKey) -> str:
    """``<reference>/<label slug>/<seed>``: the run's job key and its path in the work folder."""
    reference, label, seed = key
    return f"{reference}/{label_slug(label)}/{seed}"


def method_run(
    entry: BenchmarkMethod,
    seed: int,
    reference_name: str,
    train_params: Mapping[str, Any],
    generation: GenerationConfig,
    backbone: Backbone | BackboneSource,
    features: Callable[[], Mapping[str, Any]],
    row: Mapping[str, Any],
    prompts: Sequence[str],
    settings: Mapping[str, Any],
    work_dir: Path | None,
    variants: Sequence[Mapping[str, Any]] = (),
) -> PlannedRun:
    """The run of ``entry`` on one reference with one seed: learn the motion, generate ``prompts``
    (:func:`train_and_generate`). ``train_params``: the ``train`` parameters (the method's loop settings as in
    :func:`training_config_for`); ``features``: the reference's, asked for only when the job is made;
    ``settings``: what the run depends on besides the method's (backbone, reference, prompts). The job's training
    checkpoints go under ``<work_dir>/jobs/<run>``, so a retried job resumes. ``variants``: generation overrides
    applied over the entry's, each generating ``prompts`` once more from the same learnt motion (the run's
    videos: the entry's first, then each variant's)."""
    method_params = {**train_params, "method": entry.method, entry.method: entry.options, **entry.train}
    loop = replace(training_config_for(method_params), seed=seed)
    sampling = replace(generation, **{**entry.generate, "seed": seed})
    variant_samplings = [replace(generation, **{**entry.generate, **variant, "seed": seed}) for variant in variants]
    key = (reference_name, entry.label, seed)
    return PlannedRun(
        key,
        {**settings, "method": entry.method, "options": entry.options, "loop": loop, "sampling": sampling,
         **({"variant_samplings": variant_samplings} if variant_samplings else {})},
        lambda: Job(run_name(key), train_and_generate, {
            "backbone": backbone, "method": entry.method, "options": dict(entry.options), "loop": loop,
            "features": dict(features()), "row": dict(row), "prompts": list(prompts), "sampling": sampling,
            "checkpoint_dir": job_work_dir(work_dir, "jobs", run_name(key), "checkpoints"),
            "variant_samplings": variant_samplings,
        }),
    )


def execute_runs(
    runs: Sequence[PlannedRun],
    executor: Executor,
    work_dir: Path | None,
    description: str,
    progress: bool = True,
) -> dict[RunKey, list[np.ndarray]]:
    """The videos of every run: from ``work_dir`` where it holds them with the same settings, else from the run's
    job on ``executor``, stored in ``work_dir`` as each finishes. ``progress``: a bar over the runs."""
    outputs: dict[RunKey, list[np.ndarray]] = {}
    pending: list[tuple[PlannedRun, Path | None, str]] = []
    for run in runs:
        reference, label, seed = run.key
        blob = json.dumps({"label": label, "seed": seed, **run.settings}, sort_keys=True, default=str)
        fingerprint = hashlib.sha256(blob.encode("utf-8")).hexdigest()
        path = Path(work_dir) / f"{run_name(run.key)}.safetensors" if work_dir is not None else None
        if path is not None and path.exists():
            with safe_open(str(path), framework="pt") as stored:
                if (stored.metadata() or {}).get("fingerprint") == fingerprint:
                    outputs[run.key] = list(stored.get_tensor("videos").numpy())
                    continue
        pending.append((run, path, fingerprint))
    bar = tqdm(total=len(runs), initial=len(outputs), desc=description, disable=not progress)
    jobs = [run.make_job() for run, _, _ in pending]

    def store(index: int, videos: list[np.ndarray]) -> None:
        run, path, fingerprint = pending[index]
        outputs[run.key] = videos
        if path is not None:
            write_atomically(path, lambda target: save_file({"videos": torch.from_numpy(np.stack(videos))}, str(target),
                                                            metadata={"fingerprint": fingerprint}), suffix=".safetensors")
        bar.update(1)

    logger.info("%s: %d runs to do on the %s executor (%d stored)", description, len(pending), executor.name, len(outputs))
    executor.run(jobs, on_result=store)
    bar.close()
    return outputs


def features_digest(features: Mapping[str, Any]) -> str:
    """sha256 of a reference's cached features (tensors by name): a run's videos depend on them."""
    digest = hashlib.sha256()
    for name in sorted(features):
        value = features[name]
        digest.update(name.encode("utf-8"))
        digest.update(value.detach().cpu().contiguous().numpy().tobytes() if isinstance(value, torch.Tensor) else repr(value).encode("utf-8"))
    return digest.hexdigest()


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
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Train, generate and evaluate every (method, reference, seed); ``train_params`` are the ``train``
    parameters (loop settings per method as in :func:`training_config_for`). Returns one row per generated video
    (columns method, motion, seed, prompt + metrics) and the videos keyed ``<method>/<seed>/<motion>/<NN>_<prompt>``.

    The (method, seed, reference) runs are independent jobs for ``executor`` (local by default); an executor
    outside this process gets the backbone's source and loads it there. ``work_dir``: each run's videos are stored
    there as it finishes and its training checkpoints under ``jobs/``, so a rerun after a crash resumes (the
    folder goes once every run is evaluated). Evaluation runs here.
    """
    executor = executor or LocalExecutor()
    handle = executor.job_backbone(backbone)
    settings = {reference.name: _reference_settings(backbone, reference) for reference in references}  # hashed once each
    runs = [
        method_run(entry, seed, reference.name, train_params, generation, handle, lambda reference=reference: reference.features,
                   reference.row, reference.prompts, settings[reference.name], work_dir)
        for entry in methods for seed in seeds for reference in references
    ]
    outputs = execute_runs(runs, executor, work_dir, "benchmark", progress)
    rows: list[dict[str, Any]] = []
    videos: dict[str, np.ndarray] = {}
    for run in runs:
        reference_name, label, seed = run.key
        reference = next(item for item in references if item.name == reference_name)
        generated = {video_id(reference.name, i, p): (p, v) for i, (p, v) in enumerate(zip(reference.prompts, outputs[run.key]))}
        report = evaluate_motion(
            reference.frames, generated, tracker, tracker_description, static_threshold,
            clip_scorer=models.clip_scorer, temporal_pairs=models.temporal_pairs,
            fid_features=models.fid_features, fid_reference_images=models.fid_reference_images, skipped=models.skipped,
        )
        fid = report["mean"].get("fid")
        for video in report["videos"]:
            rows.append({"method": label, "motion": reference.name, "seed": seed, **video, "fid": fid})
        for key, (_, frames) in generated.items():
            videos[f"{label_slug(label)}/{seed}/{key}"] = frames
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)  # every run evaluated: its videos and checkpoints are not needed
    return pd.DataFrame(rows), videos


def _reference_settings(backbone: Backbone, reference: BenchmarkReference) -> dict[str, Any]:
    return {"backbone": backbone.fingerprint(), "reference": reference.name, "row": dict(reference.row),
            "features": features_digest(reference.features), "prompts": list(reference.prompts)}


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


def bar_chart(title: str, labels: Sequence[str], means: Sequence[float], spreads: Sequence[float] | np.ndarray) -> np.ndarray:
    """A bar per label with its spread as error bar, rendered to an RGB image (H, W, 3) uint8. ``spreads``: (N,)
    symmetric, or (2, N) distances below and above each mean (an interval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(3.0, 1.2 * len(labels)), 3.0), dpi=100)
    axis.bar(range(len(labels)), list(means), yerr=np.asarray(spreads, dtype=float), capsize=4, color="#4C72B0")
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
