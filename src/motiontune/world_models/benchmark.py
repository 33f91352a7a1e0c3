"""Motion benchmark on the world: every method against ground truth, with the plain backbone as control.

    config = WorldBenchmarkConfig.from_params(params["world_benchmark"])
    cases = benchmark_cases(spec, config)                    # reference clip + target prompts each
    results = run_world_benchmark(backbone, spec, cases, methods, controls, ...)
    table = world_summary(results)                          # per method: mean and spread

A case is a reference clip of one object and motion (drawn from the world, often a held-out family
the backbone never saw) and target prompts naming a *different* colour and shape and *no* motion
("a blue star"), as in the papers' protocol. Every generated video is read by the ground-truth-free
analyser and scored against the intent "target colour and shape, moving like the reference":

* ``trajectory_similarity``: motion fidelity of the object's centroid track against the reference's
  ground-truth track (seed 002 eq. 6 on a single track; 0 when no object is found),
* ``jump_share``: share of the object's frame steps that are jumps (redrawn elsewhere in one frame, farther than
  any world motion steps: ``world.scoring.jump_fraction``), and ``jump_free_trajectory_similarity``: the
  trajectory similarity with those steps left out; together they tell broken frames from wrong motion,
* ``direction_correct``: overall on-screen direction as the reference's (None for closed paths),
* ``scale_similarity``: the same correlation of the object's per-frame log-area changes, for references whose
  object grows or shrinks (grow, shrink, zoom; None otherwise): where the trajectory cannot tell a clip from
  its reverse (an object growing in place vs shrinking in place), this can,
* ``point_track_fidelity``: the usual Motion Fidelity Score from point tracks (configured tracker),
* ``colour_correct`` / ``shape_correct``: text alignment,
* ``leakage``: the reference's colour or shape appears instead of the target's,
* ``clip_text_similarity``: CLIP cosine of the frames with the target prompt, ``clip_reference_similarity``:
  with the reference's appearance ("a red circle", CLIP's view of leakage), ``clip_temporal_consistency``:
  of the frames with each other; all through the evaluation's CLIP code (``evaluate.clip``: by default the
  tiny CLIP trained on the world), None when no CLIP model is configured.

A control is the backbone alone on the same prompts and seeds, sampled like the methods: it shows
what the prompts and the noise give without any learnt motion.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from motiontune.errors import UserError
from motiontune.backbone.loading import Backbone, BackboneSource, backbone_in_process
from motiontune.benchmark import BenchmarkMethod, PlannedRun, bar_chart, execute_runs, label_slug, method_run, run_name
from motiontune.methods.base import recommended_inference
from motiontune.executors import Executor, Job, LocalExecutor
from motiontune.sampling.features import PROMPT_EMBEDS, SIMPLIFIED_PROMPT_EMBEDS, encode_reference
from motiontune.sampling.latents import encode_prompts
from motiontune.metrics.intervals import bootstrap_interval
from motiontune.metrics.clip_scores import ClipScorer, PairMode, mean_cosine_to_vector, mean_pairwise_cosine
from motiontune.metrics.motion_fidelity import motion_fidelity
from motiontune.metrics.trackers import Tracker
from motiontune.io.prompts import simplify_prompt
from motiontune.known_keys import check_known_keys
from motiontune.io.references import training_prompts
from motiontune.generation.generate import DEFAULT_BLEND_STRENGTH, GenerationConfig, generate_without_motion, video_id
from motiontune.world.analyser import AnalyserConfig, analyse_video
from motiontune.world.generator import WorldSample, caption_for, render_sample
from motiontune.world.scoring import Intent, Reference, ScoringConfig, score_video
from motiontune.world.spec import WorldSpec
from motiontune.world.vocabulary import noun_phrase

logger = logging.getLogger(__name__)


class WorldBenchmarkError(ValueError, UserError):
    """The benchmark's cases cannot be built from its parameters and the world's vocabulary."""

# Per-video metrics of the results table, and whether higher is better.
METRICS = (
    ("trajectory_similarity", True),
    ("jump_free_trajectory_similarity", True),
    ("jump_share", False),
    ("direction_correct", True),
    ("scale_similarity", True),
    ("point_track_fidelity", True),
    ("colour_correct", True),
    ("shape_correct", True),
    ("leakage", False),
    ("clip_text_similarity", True),
    ("clip_reference_similarity", False),
    ("clip_temporal_consistency", True),
    ("found", True),
)


@dataclass(frozen=True)
class CaseSpec:
    """A reference to draw: family, its parameters (others drawn), colour/shape (None = drawn)."""

    family: str
    params: dict[str, Any] = field(default_factory=dict)
    colour: str | None = None
    shape: str | None = None


@dataclass(frozen=True)
class BenchmarkCase:
    """A reference clip with ground truth and the prompts its motion is transferred to."""

    name: str
    reference: WorldSample
    train_prompt: str  # the caption; methods that train on the simplified prompt take simplified_train_prompt
    simplified_train_prompt: str
    target_prompts: tuple[str, ...]
    targets: tuple[tuple[str, str], ...]  # (colour, shape) per target prompt
    # The reference's caption with another colour and shape (motion words kept), trained on as well, one caption
    # per step (world_benchmark.train_caption_variants); none of them names a target's appearance.
    train_prompt_variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class Control:
    """The backbone alone, sampled with these generation overrides."""

    label: str
    generate: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodVariant:
    """Every method's learnt motion generated once more with these generation overrides, as the row
    ``<method label><suffix>`` (e.g. " (random noise)" with ``noise_init: random``: what the trained parameters
    carry without the reference's inverted noise). Costs a generation, not a training."""

    suffix: str
    generate: dict[str, Any] = field(default_factory=dict)


TARGET_MODES = ("others", "reference", "others_with_motion")
# The keys of ``world_benchmark`` (conf/base/parameters_world_benchmark.yml); any other is an error.
WORLD_BENCHMARK_KEYS = ("reference_seed", "cases", "targets_per_case", "targets", "seeds", "progress_bar", "executor",
                        "work_dir", "inversion_steps", "train", "generate", "controls", "methods", "method_variants",
                        "train_caption_variants", "families")


@dataclass(frozen=True)
class WorldBenchmarkConfig:
    """``world_benchmark`` parameters (conf/base/parameters_world_benchmark.yml)."""

    reference_seed: int
    cases: tuple[CaseSpec, ...]
    targets_per_case: int
    seeds: tuple[int, ...]
    inversion_steps: int
    # others: targets_per_case prompts naming another colour and shape (transfer); reference: the reference's own
    # caption, one per case (the sanity check: a method must reproduce its own reference before it can transfer it);
    # others_with_motion: the same colours and shapes as others, in the reference's caption grammar with its motion
    # words kept ("a blue star quickly moving right"): a diagnostic of whether what a method learnt is bound to
    # the motion words of the caption it trained on rather than carried by its parameters for any prompt.
    targets: str = "others"
    method_variants: tuple[MethodVariant, ...] = ()
    # 0: each method trains on the reference's caption, as its paper does. N > 0 (an appearance-augmentation
    # diagnostic, in no paper or public code): also on N captions naming another colour and shape with the same
    # motion words, one of the N + 1 drawn per step, so what is learnt cannot lean on the reference's appearance
    # words. The videos trained on are the reference's either way.
    train_caption_variants: int = 0
    # None: every case. Else only the cases of these families, each drawn exactly as in the whole benchmark (its
    # index, hence its reference clip, targets and caption variants, is its place in ``cases``), so a subset's
    # numbers are those of the same videos of a whole run.
    families: tuple[str, ...] | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> WorldBenchmarkConfig:
        check_known_keys("world_benchmark", params, WORLD_BENCHMARK_KEYS)
        cases = tuple(CaseSpec(**dict(case)) for case in params["cases"])
        variants = []
        for index, variant in enumerate(params.get("method_variants") or ()):
            check_known_keys(f"world_benchmark.method_variants[{index}]", variant, ("suffix", "generate"))
            variants.append(MethodVariant(suffix=str(variant["suffix"]), generate=dict(variant.get("generate") or {})))
        config = cls(
            reference_seed=int(params["reference_seed"]),
            cases=cases,
            targets_per_case=int(params["targets_per_case"]),
            seeds=tuple(int(seed) for seed in params["seeds"]),
            inversion_steps=int(params["inversion_steps"]),
            targets=str(params.get("targets", "others")),
            method_variants=tuple(variants),
            train_caption_variants=params.get("train_caption_variants", 0),
            families=_families(params.get("families"), cases),
        )
        if not config.cases or config.targets_per_case < 1 or not config.seeds:
            raise ValueError("world_benchmark: needs at least one case, one target per case and one seed")
        variants_count = config.train_caption_variants
        if not isinstance(variants_count, int) or isinstance(variants_count, bool) or variants_count < 0:
            raise ValueError(f"world_benchmark.train_caption_variants: a whole number >= 0, got {variants_count!r}")
        if config.targets not in TARGET_MODES:
            raise ValueError(f"world_benchmark.targets: '{config.targets}' is not one of {list(TARGET_MODES)}")
        if len({variant.suffix for variant in variants}) < len(variants) or any(not v.suffix.strip() for v in variants):
            raise ValueError("world_benchmark.method_variants: each needs its own non-empty suffix")
        return config


def _families(families: Any, cases: Sequence[CaseSpec]) -> tuple[str, ...] | None:
    """``world_benchmark.families`` checked against the cases' families: None (all cases) or a non-empty list."""
    if families is None:
        return None
    known = list(dict.fromkeys(case.family for case in cases))
    if isinstance(families, str) or not isinstance(families, Sequence) or not families:
        raise WorldBenchmarkError(f"world_benchmark.families: null or a list of the cases' families ({', '.join(known)}), "
                                  f"got {families!r}")
    unknown = sorted({str(family) for family in families} - set(known))
    if unknown:
        raise WorldBenchmarkError(f"world_benchmark.families: {', '.join(unknown)} not among the cases' families "
                                  f"({', '.join(known)})")
    return tuple(str(family) for family in families)


def benchmark_cases(spec: WorldSpec, config: WorldBenchmarkConfig) -> list[BenchmarkCase]:
    """Draw every case's reference and its target prompts (``config.targets``); a pure function of the config.
    With ``config.families``, only those families' cases, each as the whole benchmark draws it."""
    cases = []
    for index, case in enumerate(config.cases):
        if config.families is not None and case.family not in config.families:
            continue  # skipped, not renumbered: the index seeds the reference, the targets and the variants
        seed = config.reference_seed * 1000 + index
        reference = render_sample(spec, case.family, params=case.params or None, colour=case.colour, shape=case.shape, seed=seed)
        direction = reference.truth.screen_direction or reference.truth.path_kind
        common = {"name": f"{index:02d}_{case.family}_{direction}", "reference": reference, "train_prompt": reference.caption,
                  "simplified_train_prompt": simplify_prompt(reference.caption)}
        truth = reference.truth
        others = [(c, s) for c in spec.colours for s in spec.shapes if c != reference.colour and s != reference.shape]
        if config.targets == "reference":
            chosen = [(reference.colour, reference.shape)]
            prompts: tuple[str, ...] = (reference.caption,)
        else:
            rng = np.random.default_rng([config.reference_seed, index])
            if len(others) < config.targets_per_case:
                raise WorldBenchmarkError(f"world_benchmark.targets_per_case: only {len(others)} colour/shape pairs "
                                          "differ from the reference's")
            chosen = [others[int(i)] for i in rng.choice(len(others), size=config.targets_per_case, replace=False)]
            if config.targets == "others_with_motion":
                prompts = tuple(caption_for(truth.family, truth.params, c, s) for c, s in chosen)
            else:
                prompts = tuple(noun_phrase(c, s) for c, s in chosen)
        variants: tuple[str, ...] = ()
        if config.train_caption_variants:
            # Drawn from their own stream, so the targets are those of a run without variants.
            pool = [pair for pair in others if pair not in chosen]
            if len(pool) < config.train_caption_variants:
                raise WorldBenchmarkError(f"world_benchmark.train_caption_variants: only {len(pool)} colour/shape "
                                          "pairs differ from the reference's and the targets' (both colour and shape)")
            rng = np.random.default_rng([config.reference_seed, index, len(chosen)])
            picked = rng.choice(len(pool), size=config.train_caption_variants, replace=False)
            variants = tuple(caption_for(truth.family, truth.params, *pool[int(i)]) for i in picked)
        cases.append(BenchmarkCase(**common, target_prompts=prompts, targets=tuple(chosen), train_prompt_variants=variants))
    return cases


def add_caption_variants(backbone: Backbone, features: dict[str, Any], variants: Sequence[str]) -> None:
    """Append the embeddings of ``variants`` (and of their simplified prompts) to the reference's caption's:
    ``prompt_embeds`` / ``simplified_prompt_embeds`` become (1 + len(variants), L, D), row 0 the caption's;
    the training loop draws one row per step. The inversion (under the empty prompt) is unchanged."""
    if not variants:
        return
    features[PROMPT_EMBEDS] = torch.cat([features[PROMPT_EMBEDS], encode_prompts(backbone, list(variants)).float().cpu()])
    simplified = encode_prompts(backbone, [simplify_prompt(variant) for variant in variants]).float().cpu()
    features[SIMPLIFIED_PROMPT_EMBEDS] = torch.cat([features[SIMPLIFIED_PROMPT_EMBEDS], simplified])


def _reference_row(case: BenchmarkCase) -> dict[str, Any]:
    frames = case.reference.frames
    return {
        "num_frames": frames.shape[0], "height": frames.shape[1], "width": frames.shape[2],
        "source_path": f"world:{case.name}", "source_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
        "train_prompt": case.train_prompt, "simplified_train_prompt": case.simplified_train_prompt,
    }


def score_generated(
    frames: np.ndarray,
    case: BenchmarkCase,
    target: tuple[str, str],
    spec: WorldSpec,
    analyser: AnalyserConfig,
    scoring: ScoringConfig,
    tracker: Tracker,
    reference_tracks: Any,
    static_threshold: float,
    clip: ClipScorer | None = None,
    temporal_pairs: PairMode = "all",
) -> dict[str, Any]:
    """The per-video metrics (see the module docstring) of one generated clip (uint8 (F, H, W, 3))."""
    analysis = analyse_video(frames, spec, analyser)
    intent = Intent(target[0], target[1], case.reference.truth)
    score = score_video(analysis, intent, Reference.from_sample(case.reference), scoring)
    fidelity = motion_fidelity(reference_tracks, tracker.track(frames), static_threshold)
    leaks = [leak for leak in (score.colour_leak, score.shape_leak) if leak is not None]
    clip_scores: dict[str, float | None] = dict.fromkeys(
        ("clip_text_similarity", "clip_reference_similarity", "clip_temporal_consistency"))
    if clip is not None:
        embeddings = clip.embed_images(frames)
        clip_scores = {
            "clip_text_similarity": mean_cosine_to_vector(embeddings, clip.embed_text(noun_phrase(*target))),
            "clip_reference_similarity": mean_cosine_to_vector(
                embeddings, clip.embed_text(noun_phrase(case.reference.colour, case.reference.shape))),
            "clip_temporal_consistency": mean_pairwise_cosine(embeddings, temporal_pairs),
        }
    return {
        "found": float(score.found),
        "trajectory_similarity": score.trajectory_similarity if score.trajectory_similarity is not None else 0.0,
        "jump_free_trajectory_similarity": (score.jump_free_trajectory_similarity
                                            if score.jump_free_trajectory_similarity is not None else 0.0),
        "jump_share": score.jump_share,
        "scale_similarity": score.scale_similarity,
        "direction_correct": None if score.direction_correct is None else float(score.direction_correct),
        "point_track_fidelity": fidelity.score,
        "colour_correct": float(score.colour_correct),
        "shape_correct": float(score.shape_correct),
        "leakage": float(any(leaks)) if leaks else None,
        **clip_scores,
        "generated_colour": analysis.colour,
        "generated_shape": analysis.shape,
        "generated_direction": analysis.direction,
    }


def run_world_benchmark(
    backbone: Backbone,
    spec: WorldSpec,
    cases: Sequence[BenchmarkCase],
    methods: Sequence[BenchmarkMethod],
    controls: Sequence[Control],
    train_params: Mapping[str, Any],
    generation: GenerationConfig,
    config: WorldBenchmarkConfig,
    analyser: AnalyserConfig,
    scoring: ScoringConfig,
    tracker: Tracker,
    static_threshold: float,
    clip: ClipScorer | None = None,
    temporal_pairs: PairMode = "all",
    progress: bool = True,
    work_dir: Path | None = None,
    executor: Executor | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Controls and methods x cases x seeds. Returns one row per generated video and the videos keyed
    ``<label>/<seed>/<case>/<NN>_<prompt>`` (references under ``reference/<case>``). ``clip``: scores the
    CLIP columns (None: they stay empty). ``progress``: a bar over the (case, method or control, seed) runs.
    ``work_dir``: each run's videos are kept there as it finishes, so a rerun after a crash redoes only the runs
    that had not (a run whose settings changed is redone); the folder goes once the benchmark completes.
    ``executor``: where the runs go (local by default: one after the other here; ``ray``: Ray tasks, each method
    run checkpointing under ``work_dir/jobs`` so a retried one resumes); scoring runs here."""
    executor = executor or LocalExecutor()
    handle = executor.job_backbone(backbone)
    runs: list[PlannedRun] = []
    for case in cases:
        features: dict[str, Any] = {}
        row = _reference_row(case)  # hashes the reference's frames: once per case

        def reference_features(case: BenchmarkCase = case, row: dict[str, Any] = row, features: dict[str, Any] = features) -> dict[str, Any]:
            if not features:  # only when some run of this case is not stored yet
                features.update(encode_reference(backbone, case.reference.frames, *training_prompts(row),
                                                 config.inversion_steps, progress=False))
                add_caption_variants(backbone, features, case.train_prompt_variants)
            return features

        # What every run of this case depends on besides its own settings (the key of its stored videos).
        case_settings = {"backbone": backbone.fingerprint(), "inversion_steps": config.inversion_steps,
                         "case": case.name, "reference": row["source_sha256"],
                         "prompts": case.target_prompts, "train_prompt_variants": case.train_prompt_variants}
        for control in controls:
            for seed in config.seeds:
                sampling = replace(generation, **{**control.generate, "seed": seed})
                key = (case.name, control.label, seed)
                runs.append(PlannedRun(key, {**case_settings, "control": control.generate, "sampling": sampling},
                                       lambda key=key, case=case, sampling=sampling, features=reference_features: Job(
                    run_name(key), generate_control,
                    {"backbone": handle, "prompts": list(case.target_prompts), "shape": case.reference.frames.shape[:3],
                     "sampling": sampling, "reference": features()})))
        for entry in methods:
            for seed in config.seeds:
                runs.append(method_run(entry, seed, case.name, train_params, generation, handle, reference_features,
                                       row, case.target_prompts, case_settings, work_dir,
                                       [variant.generate for variant in config.method_variants]))
    outputs = execute_runs(runs, executor, work_dir, "world benchmark", progress)
    rows: list[dict[str, Any]] = []
    videos: dict[str, np.ndarray] = {}
    for case in cases:
        reference_tracks = tracker.track(case.reference.frames)
        videos[f"reference/{case.name}"] = case.reference.frames
        # (row label, run label, which of the run's generations): a method run holds its own videos, then each variant's.
        rows_of_runs = [(control.label, control.label, 0) for control in controls]
        rows_of_runs += [(entry.label, entry.label, 0) for entry in methods]
        rows_of_runs += [(entry.label + variant.suffix, entry.label, number)
                         for number, variant in enumerate(config.method_variants, start=1) for entry in methods]
        count = len(case.target_prompts)
        for label, run_label, part in rows_of_runs:
            for seed in config.seeds:
                generated = outputs[(case.name, run_label, seed)][part * count:(part + 1) * count]
                for index, (prompt, target, frames) in enumerate(zip(case.target_prompts, case.targets, generated)):
                    rows.append({
                        "method": label, "case": case.name, "family": case.reference.family,
                        "reference_seed": config.reference_seed, "seed": seed, "prompt": prompt,
                        "reference_colour": case.reference.colour, "reference_shape": case.reference.shape,
                        "target_colour": target[0], "target_shape": target[1],
                        **score_generated(frames, case, target, spec, analyser, scoring, tracker, reference_tracks,
                                          static_threshold, clip, temporal_pairs),
                    })
                    videos[f"{label_slug(label)}/{seed}/{video_id(case.name, index, prompt)}"] = frames
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return pd.DataFrame(rows), videos


def generate_control(
    backbone: Backbone | BackboneSource,
    prompts: Sequence[str],
    shape: tuple[int, int, int],
    sampling: GenerationConfig,
    reference: Mapping[str, Any],
) -> list[np.ndarray]:
    """One control job: the backbone alone generates ``prompts`` as (F, H, W, 3) uint8 videos of ``shape``
    (frames, height, width), sampled as the methods sample (noise init from ``reference``'s inversion)."""
    return generate_without_motion(backbone_in_process(backbone), prompts, *shape, sampling, reference)


def world_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per method (in run order): mean of each metric over its videos, its 95% percentile bootstrap interval over
    videos (``<metric>_ci_low`` / ``_ci_high``), and the spread (standard deviation) of the per-seed means, so a
    reader sees how sure the mean is and how much a rerun with another seed moves it."""
    summary = pd.DataFrame({"Method": pd.unique(results["method"])})
    for metric, _ in METRICS:
        # A column the results lack (e.g. CLIP scores of a run without a CLIP model) summarises as n/a.
        values = pd.to_numeric(results[metric], errors="coerce") if metric in results else pd.Series(np.nan, index=results.index)
        frame = results.assign(value=values)
        summary[metric] = summary["Method"].map(frame.groupby("method", sort=False)["value"].mean())
        intervals = {label: bootstrap_interval(group.to_numpy()) for label, group in frame.groupby("method", sort=False)["value"]}
        summary[f"{metric}_ci_low"] = summary["Method"].map(lambda label: intervals[label][0])
        summary[f"{metric}_ci_high"] = summary["Method"].map(lambda label: intervals[label][1])
        per_seed = frame.groupby(["method", "seed"], sort=False)["value"].mean()
        spread = per_seed.groupby(level="method", sort=False).std(ddof=0)
        summary[f"{metric}_seed_spread"] = summary["Method"].map(spread)
    summary["videos"] = summary["Method"].map(results.groupby("method", sort=False).size())
    return summary


def world_summary_markdown(summary: pd.DataFrame) -> str:
    """The comparison table: mean [95% bootstrap interval] per metric, arrows for the better direction."""
    header = ["Method"] + [f"{metric} {'↑' if higher else '↓'}" for metric, higher in METRICS] + ["Videos"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for record in summary.to_dict(orient="records"):
        cells = [str(record["Method"])]
        for metric, _ in METRICS:
            mean, low, high = record[metric], record[f"{metric}_ci_low"], record[f"{metric}_ci_high"]
            cells.append("n/a" if pd.isna(mean) else f"{mean:.2f} [{low:.2f}, {high:.2f}]")
        cells.append(str(int(record["videos"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _noise_init(settings: Mapping[str, Any]) -> tuple[str, float | None]:
    """(noise init, blend strength or None): what decides the noise a sampling starts from."""
    noise_init = str(settings.get("noise_init") or "random")
    blend = settings.get("blend_strength")
    return noise_init, (float(blend if blend is not None else DEFAULT_BLEND_STRENGTH) if noise_init == "blend" else None)


def same_init_controls(
    methods: Sequence[BenchmarkMethod],
    controls: Sequence[Control],
    generation: GenerationConfig,
    variants: Sequence[MethodVariant] = (),
) -> dict[str, str | None]:
    """Each method row's (and variant row's) control: the one whose noise init (and blend strength) its sampling
    uses, so a method is judged by what it adds to the noise it starts from. None when no control matches.
    A method's init: its inference default (``train.<method>.inference``), under the benchmark's generation
    settings, its entry's ``generate`` and the variant's."""
    given = {key: value for key, value in (("noise_init", generation.noise_init), ("blend_strength", generation.blend_strength))
             if value is not None}
    by_init: dict[tuple[str, float | None], str] = {}
    for control in controls:
        by_init.setdefault(_noise_init({**given, **control.generate}), control.label)
    matched: dict[str, str | None] = {}
    for entry in methods:
        own = {**recommended_inference(entry.method, entry.options), **given, **entry.generate}
        matched[entry.label] = by_init.get(_noise_init(own))
        for variant in variants:
            matched[entry.label + variant.suffix] = by_init.get(_noise_init({**own, **variant.generate}))
    return matched


# What names one generated video of a results table: the reference draw, its case, the seed and the target prompt.
# Tables written before the reference_seed column existed were all drawn at one reference seed.
VIDEO_KEYS = ("reference_seed", "case", "seed", "prompt")


def video_keys(results: pd.DataFrame) -> list[str]:
    """The columns of :data:`VIDEO_KEYS` that ``results`` has (``reference_seed`` is absent from older tables)."""
    return [key for key in VIDEO_KEYS if key in results.columns]


def control_leads(results: pd.DataFrame, controls: Mapping[str, str | None], metric: str = "trajectory_similarity") -> pd.DataFrame:
    """Per method row with a control: the mean of ``metric`` minus its control's, over the videos both generated
    (same reference draw, case, seed and prompt: paired), with a 95% bootstrap interval of that paired difference."""
    keys = video_keys(results)
    values = results.assign(value=pd.to_numeric(results[metric], errors="coerce"))
    rows = []
    for label in pd.unique(results["method"]):
        control = controls.get(label)
        if control is None:
            continue
        paired = values[values["method"] == label][[*keys, "value"]].merge(
            values[values["method"] == control][[*keys, "value"]], on=keys, suffixes=("", "_control"))
        difference = (paired["value"] - paired["value_control"]).to_numpy(dtype=float)
        low, high = bootstrap_interval(difference)
        rows.append({"Method": label, "control": control, f"{metric}": float(np.nanmean(paired["value"])),
                     f"{metric}_control": float(np.nanmean(paired["value_control"])),
                     "lead": float(np.nanmean(difference)), "lead_ci_low": low, "lead_ci_high": high, "videos": len(paired)})
    return pd.DataFrame(rows)


def control_leads_markdown(leads: pd.DataFrame, metric: str = "trajectory_similarity") -> str:
    """The leads table: each method against the control that starts from the same noise."""
    lines = [f"| Method | control (same noise init) | {metric} | control's | lead [95% interval] | Videos |",
             "|---|---|---:|---:|---:|---:|"]
    for record in leads.to_dict(orient="records"):
        lines.append(f"| {record['Method']} | {record['control']} | {record[metric]:.2f} | {record[metric + '_control']:.2f} | "
                     f"{record['lead']:+.2f} [{record['lead_ci_low']:+.2f}, {record['lead_ci_high']:+.2f}] | {record['videos']} |")
    return "\n".join(lines) + "\n"


def family_markdown(results: pd.DataFrame, metric: str = "trajectory_similarity") -> str:
    """Mean ``metric`` per method (rows, in run order) and reference family (columns, in case order), over every
    video of that family: where a method transfers and where it does not."""
    values = results.assign(value=pd.to_numeric(results[metric], errors="coerce"))
    table = values.groupby(["method", "family"], sort=False)["value"].mean()  # NaN where a family has no value
    families = list(pd.unique(results["family"]))
    lines = [f"| {metric} | " + " | ".join(families) + " |", "|---|" + "---:|" * len(families)]
    for label in pd.unique(results["method"]):
        cells = ["n/a" if pd.isna(table.get((label, family), np.nan)) else f"{table[(label, family)]:.2f}" for family in families]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def world_plots(results: pd.DataFrame) -> dict[str, np.ndarray]:
    """One bar chart per metric: mean per method with its 95% bootstrap interval, as RGB images."""
    summary = world_summary(results)
    plots = {}
    for metric, higher in METRICS:
        means = summary[metric].fillna(0.0).to_numpy()
        below = (summary[metric] - summary[f"{metric}_ci_low"]).fillna(0.0).to_numpy()
        above = (summary[f"{metric}_ci_high"] - summary[metric]).fillna(0.0).to_numpy()
        plots[metric] = bar_chart(f"{metric} ({'higher' if higher else 'lower'} is better; 95% bootstrap interval)",
                                  list(summary["Method"]), means, np.stack([below, above]))
    return plots
