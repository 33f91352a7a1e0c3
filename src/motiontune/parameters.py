"""Check the run's parameters before any stage starts, so a typo fails in a second with a clear line
instead of after minutes of encoding and training."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from motiontune.backbone.layout import BLOCK_PRESETS
from motiontune.backbone.loading import BackboneSettings
from motiontune.benchmark import BenchmarkSettings
from motiontune.errors import UserError
from motiontune.executors import executor_problems
from motiontune.io.references import IngestSettings
from motiontune.metrics.clip_scores import missing_local_model
from motiontune.metrics.configured import evaluate_problems
from motiontune.methods.embeddings import DEBIAS_MODES
from motiontune.methods.base import method_config, method_names
from motiontune.training.customize import training_config_for
from motiontune.generation.generate import GenerationConfig
from motiontune.sampling.noise import NOISE_INITS
from motiontune.sampling.features import EncodeSettings
from motiontune.generation.reference_inversion import INVERSION_MODELS, INVERSION_PROMPTS
from motiontune.tracking.registry import registry_generate_problems


class ParameterError(ValueError, UserError):
    """One or more parameters are invalid; the message lists each as ``section.key: problem``."""


def _check(problems: list[str], check: Any) -> None:
    try:
        check()
    except (ValueError, TypeError) as error:
        problems.append(str(error))


def _positive_int(problems: list[str], name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.append(f"{name}: must be a positive integer, got {value!r}")


def parameter_problems(params: Mapping[str, Any]) -> list[str]:
    """Every problem found in the ``video``, ``train``, ``generate`` and ``evaluate`` sections."""
    problems: list[str] = []
    video = params.get("video", {})
    for key in ("num_frames", "height", "width"):
        _positive_int(problems, f"video.{key}", video.get(key))
    if not isinstance(video.get("fps"), (int, float)) or video.get("fps", 0) <= 0:
        problems.append(f"video.fps: must be a positive number, got {video.get('fps')!r}")

    train = params.get("train")
    if train is not None:
        _check(problems, lambda: training_config_for(train))  # unknown train.* keys included
        method = train.get("method")
        # The chosen method's block, and every other method's block given (benchmarks train those too).
        for name in [method, *(name for name in method_names() if name != method and name in train)]:
            options = train.get(name) or {}
            _check(problems, lambda: method_config(name, options))  # options, training and inference blocks
            blocks = options.get("blocks")
            if name == "motion_embeddings" and isinstance(blocks, str) and blocks not in BLOCK_PRESETS:
                problems.append(f"train.{name}.blocks: '{blocks}' is not a preset ({list(BLOCK_PRESETS)}) or a list of module paths")

    generate = params.get("generate")
    if generate is not None:
        _check(problems, lambda: GenerationConfig.from_params(generate))  # unknown generate.* keys included
        problems += registry_generate_problems(generate)
        if generate.get("debias") not in (None, *DEBIAS_MODES):
            problems.append(f"generate.debias: '{generate['debias']}' is not one of {list(DEBIAS_MODES)} (or null)")
        if generate.get("noise_init") not in (None, *NOISE_INITS):
            problems.append(f"generate.noise_init: '{generate['noise_init']}' is not one of {list(NOISE_INITS)} (or null)")
        for key, allowed in (("inversion_model", INVERSION_MODELS), ("inversion_prompt", INVERSION_PROMPTS)):
            if generate.get(key) not in (None, *allowed):
                problems.append(f"generate.{key}: '{generate[key]}' is not one of {list(allowed)} (or null)")
        strength = generate.get("blend_strength")
        if strength is not None and not 0.0 <= float(strength) <= 1.0:
            problems.append(f"generate.blend_strength: must be in [0, 1], got {strength}")

    for section in ("train", "generate", "benchmark", "world_benchmark"):  # the sections whose jobs go to an executor
        if params.get(section) is not None:
            problems += executor_problems(params[section].get("executor", "local"), params.get("ray"), section)

    if params.get("ingest") is not None:
        _check(problems, lambda: IngestSettings.from_params(params["ingest"]))  # ingest.* and ingest.rules.*
    if params.get("encode") is not None:
        _check(problems, lambda: EncodeSettings.from_params(params["encode"]))
    if params.get("benchmark") is not None:
        _check(problems, lambda: BenchmarkSettings.from_params(params["benchmark"]))  # its methods included
    evaluate = params.get("evaluate")
    if params.get("backbone") is not None:
        _check(problems, lambda: BackboneSettings.from_params(params["backbone"]))
    problems += world_problems(params)
    if evaluate is not None:
        problems += evaluate_problems(evaluate)  # tracker (CoTracker paths), motion fidelity, unknown keys
    clip = (evaluate or {}).get("clip") or {}
    if clip.get("model") and clip.get("backend", "transformers") == "transformers" and missing_local_model(str(clip["model"])):
        problems.append(
            f"evaluate.clip.model: {clip['model']} is neither a folder here nor a Hugging Face id "
            "(the default is built by `kedro run --pipelines=world_clip`; null skips the CLIP metrics)"
        )
    return list(dict.fromkeys(problems))  # one line per problem, however many checks found it


def world_problems(params: Mapping[str, Any]) -> list[str]:
    """Problems of the sections the world pipelines build settings from (``world`` with its analyser and
    scoring, ``tiny_backbone``, ``world_backbone``, ``world_clip``, ``world_benchmark``), one line each."""
    from motiontune.backbone.tiny import TinyBackboneSpec
    from motiontune.world.analyser import AnalyserConfig
    from motiontune.world.scoring import ScoringConfig
    from motiontune.world.spec import WorldSpec
    from motiontune.world_models.backbone_training import WorldBackboneConfig
    from motiontune.world_models.benchmark import WorldBenchmarkConfig
    from motiontune.world_models.clip_training import WorldClipConfig
    from motiontune.world_models.time_symmetry import TimeSymmetryConfig

    problems: list[str] = []
    world, tiny = params.get("world"), params.get("tiny_backbone")
    world_backbone, world_clip, world_benchmark = params.get("world_backbone"), params.get("world_clip"), params.get("world_benchmark")
    if world is not None:
        _check(problems, lambda: WorldSpec.from_params(world))
        _check(problems, lambda: AnalyserConfig.from_params(world.get("analyser")))
        _check(problems, lambda: ScoringConfig.from_params(world.get("scoring")))
    if tiny is not None:
        _check(problems, lambda: TinyBackboneSpec.from_dict(tiny))
    if world_backbone is not None:
        _check(problems, lambda: WorldBackboneConfig.from_params(world_backbone.get("training") or {}))
        competence = world_backbone.get("competence") or {}
        _check(problems, lambda: TimeSymmetryConfig.from_params(competence.get("time_symmetry") or {}))
    if world_clip is not None:
        _check(problems, lambda: WorldClipConfig.from_params(world_clip.get("training") or {}))
    if world_benchmark is not None:
        try:
            _check(problems, lambda: WorldBenchmarkConfig.from_params(world_benchmark))
        except KeyError as error:
            problems.append(f"world_benchmark.{error.args[0]}: missing (see conf/base/parameters_world_benchmark.yml)")
    return problems


def check_parameters(params: Mapping[str, Any]) -> None:
    problems = parameter_problems(params)
    if problems:
        raise ParameterError("invalid parameters:\n  " + "\n  ".join(problems))
