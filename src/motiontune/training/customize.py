"""Learn a motion from one encoded reference and package it as an artifact; apply an artifact to a backbone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from motiontune.backbone.loading import Backbone, BackboneError, BackboneSource, backbone_in_process
from motiontune.sampling.features import LATENTS, PROMPT_EMBEDS, SIMPLIFIED_PROMPT_EMBEDS
from motiontune.methods.artifact import ArtifactError, MotionArtifact
from motiontune.methods.base import build_method, method_class, recommended_inference, recommended_training
from motiontune.training.loop import TrainingConfig, TrainingResult, train_motion
from motiontune.io.references import training_prompt


# Loop settings a method recommends (its paper / public code) unless the global train.<key> is set.
METHOD_LOOP_KEYS = ("steps", "learning_rate", "weight_decay", "max_grad_norm", "simplified_prompt")


def training_config_for(train: Mapping[str, Any]) -> TrainingConfig:
    """The loop settings of a run: ``train.<method>.training`` (the method's recommendation), overridden by
    every global ``train.steps`` / ``learning_rate`` / ``weight_decay`` / ``max_grad_norm`` that is not null."""
    method = train["method"]
    recommended = recommended_training(method, train.get(method))
    overrides = {key: train[key] for key in METHOD_LOOP_KEYS if train.get(key) is not None}
    return TrainingConfig.from_params({**train, **recommended, **overrides})


def learn_motion(
    backbone: Backbone | BackboneSource,
    method_name: str,
    method_options: Mapping[str, Any] | None,
    config: TrainingConfig,
    features: Mapping[str, torch.Tensor],
    reference: Mapping[str, Any],
    checkpoint_dir: Path | None = None,
) -> tuple[MotionArtifact, TrainingResult]:
    """Train ``method_name`` on one reference and return the artifact (tensors + manifest) and history.

    ``backbone``: loaded, or a :class:`BackboneSource` (an executor job: loaded once in the worker's process).

    ``features``: the cached ``latents``, ``prompt_embeds`` and ``simplified_prompt_embeds`` (the one trained on
    follows ``config.simplified_prompt``); ``reference``: its metadata row (num_frames, height, width, source_path,
    source_sha256, train_prompt, simplified_train_prompt).
    """
    backbone = backbone_in_process(backbone)
    inference_defaults = recommended_inference(method_name, method_options)  # checked before training starts
    latents = features[LATENTS]
    num_frames, height, width = int(reference["num_frames"]), int(reference["height"]), int(reference["width"])
    if latents.shape[2] != num_frames:
        raise ValueError(f"cached latents have {latents.shape[2]} frames, metadata says {num_frames}; rerun encode")
    method = build_method(method_name, method_options, backbone, num_frames, height, width)
    # Features made by hand without the simplified prompt's embeddings train on prompt_embeds either way.
    simplified = config.simplified_prompt and SIMPLIFIED_PROMPT_EMBEDS in features
    prompt_embeds = features[SIMPLIFIED_PROMPT_EMBEDS if simplified else PROMPT_EMBEDS]
    result = train_motion(method, backbone, latents, prompt_embeds, config, checkpoint_dir)
    manifest = {
        "method": method.name,
        "method_version": method.version,
        "backbone": backbone.fingerprint(),
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "blocks": method.hyperparameters().get("block_paths", []),
        "hyperparameters": {**method.hyperparameters(), **_training_settings(config)},
        "inference_defaults": inference_defaults,
        "train": {
            "steps": result.steps,
            "final_loss": result.final_loss,
            "seconds": round(result.seconds, 3),
            "resumed_from_step": result.resumed_from_step,
            **memory_and_speed_switches(config, result),
        },
        "source_video": {"path": str(reference["source_path"]), "sha256": str(reference["source_sha256"])},
        "train_prompt": training_prompt(reference, simplified),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return MotionArtifact(tensors=method.artifact_tensors(), manifest=manifest), result


def _training_settings(config: TrainingConfig) -> dict[str, Any]:
    return {
        "steps": config.steps,
        "learning_rate": config.learning_rate,
        "adam_betas": list(config.adam_betas),
        "weight_decay": config.weight_decay,
        "adam_epsilon": config.adam_epsilon,
        "max_grad_norm": config.max_grad_norm,
        "simplified_prompt": config.simplified_prompt,
        "seed": config.seed,
    }


def memory_and_speed_switches(config: TrainingConfig, result: TrainingResult) -> dict[str, Any]:
    """The training run's memory/speed switches for the manifest's ``train`` section: ``gradient_checkpointing``,
    ``mixed_precision``, ``compile`` (as configured) and ``compiled`` (whether the UNet still ran compiled at
    the end: false when compilation was given up)."""
    return {
        "gradient_checkpointing": config.gradient_checkpointing,
        "mixed_precision": config.mixed_precision,
        "compile": config.compile,
        "compiled": result.compiled,
    }


def check_artifact_fits(artifact: MotionArtifact, backbone: Backbone, num_frames: int | None = None) -> None:
    """Refuse, naming both sides, an artifact learnt on another architecture or frame count, or whose tensors
    are not what its method makes (:func:`check_artifact_tensors`)."""
    learnt_on = artifact.manifest["backbone"]
    here = backbone.fingerprint()
    if learnt_on.get("unet_config_sha256") != here["unet_config_sha256"]:
        raise BackboneError(
            f"motion learnt on backbone '{learnt_on.get('id_or_path')}' (UNet config {str(learnt_on.get('unet_config_sha256'))[:12]}) "
            f"does not fit backbone '{here['id_or_path']}' (UNet config {here['unet_config_sha256'][:12]}): different architecture"
        )
    if num_frames is not None and int(artifact.manifest["num_frames"]) != num_frames:
        raise BackboneError(
            f"motion learnt for {artifact.manifest['num_frames']} frames cannot generate {num_frames} frames; "
            f"set video.num_frames={artifact.manifest['num_frames']}"
        )
    check_artifact_tensors(artifact, backbone)


def check_artifact_tensors(artifact: MotionArtifact, backbone: Backbone) -> None:
    """Refuse an artifact whose tensors are not the ones its method makes for its recorded options and video size
    on ``backbone``'s architecture: missing or unexpected keys, other shapes, non-float dtypes.

    The reference is the method itself, built on a meta-device twin of the UNet (no memory), so a partial,
    foreign or hand-edited artifact never reaches a UNet call where it would fail obscurely or apply silently.
    """
    from motiontune.methods.artifact_size import meta_twin

    label = f"motion artifact ({artifact.method})"
    cls = method_class(artifact.method)
    size = (int(artifact.manifest["num_frames"]), int(artifact.manifest["height"]), int(artifact.manifest["width"]))
    method = cls(meta_twin(backbone), *size, **cls.options_from_manifest(artifact.manifest))
    expected = method.artifact_tensors()
    missing, unexpected = sorted(set(expected) - set(artifact.tensors)), sorted(set(artifact.tensors) - set(expected))
    if missing:
        raise ArtifactError(f"{label}: tensors missing: {missing[:3]}{' ...' if len(missing) > 3 else ''} ({len(missing)} of {len(expected)})")
    if unexpected:
        raise ArtifactError(f"{label}: unexpected tensors: {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
    for key, tensor in artifact.tensors.items():
        if not tensor.is_floating_point():
            raise ArtifactError(f"{label}: tensor '{key}' has dtype {tensor.dtype}; motion tensors are floating point")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ArtifactError(
                f"{label}: tensor '{key}' has shape {tuple(tensor.shape)}; the method makes {tuple(expected[key].shape)} "
                f"for {artifact.manifest['num_frames']} frames of {artifact.manifest['height']}x{artifact.manifest['width']} on this backbone"
            )


def applied_motion(backbone: Backbone, artifact: MotionArtifact, options: Mapping[str, Any]) -> Any:
    """Context manager applying ``artifact`` to ``backbone``'s UNet with inference ``options`` (method defaults fill gaps)."""
    check_artifact_fits(artifact, backbone)
    cls = method_class(artifact.method)
    merged = {**artifact.manifest.get("inference_defaults", {}), **{k: v for k, v in options.items() if v is not None}}
    return cls.applied(backbone.unet, artifact.tensors, merged)
