"""Build the metric models from the ``evaluate`` configuration: the point tracker and motion fidelity
settings, and the optional CLIP / Inception models with one clear line for each one skipped."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from motiontune.known_keys import unknown_key_problems
from motiontune.metrics.clip_scores import ClipScorer
from motiontune.metrics.fid import InceptionFeatures, load_reference_images
from motiontune.metrics.motion_fidelity import MODES
from motiontune.metrics.trackers import Tracker, build_tracker, load_foreground_mask, tracker_problems

logger = logging.getLogger(__name__)


@dataclass
class MetricModels:
    """What is available to score with, and why the rest is not."""

    clip_scorer: ClipScorer | None = None
    temporal_pairs: str = "all"
    fid_features: InceptionFeatures | None = None
    fid_reference_images: list[np.ndarray] | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def clip_scorer(evaluate: Mapping[str, Any]) -> ClipScorer | None:
    """The CLIP scorer of ``evaluate.clip`` (model, backend, batch size) on ``evaluate.device``; None if no model."""
    clip = dict(evaluate.get("clip") or {})
    if not clip.get("model"):
        return None
    return ClipScorer(clip["model"], device=str(evaluate.get("device", "cpu")),
                      batch_size=int(clip.get("batch_size", 32)), backend=str(clip.get("backend", "transformers")))


def metric_models(evaluate: Mapping[str, Any]) -> MetricModels:
    """Load CLIP and Inception when configured (``evaluate.clip.model``, ``evaluate.fid.*``)."""
    device = str(evaluate.get("device", "cpu"))
    clip = dict(evaluate.get("clip") or {})
    fid = dict(evaluate.get("fid") or {})
    models = MetricModels(temporal_pairs=str(clip.get("temporal_pairs", "all")))
    models.clip_scorer = clip_scorer(evaluate)
    if models.clip_scorer is None:
        reason = "no CLIP model configured (evaluate.clip.model)"
        logger.warning("CLIP text similarity and temporal consistency skipped: %s", reason)
        models.skipped.update({"clip_text_similarity": reason, "temporal_consistency": reason})
    if fid.get("inception_path") and fid.get("reference_dir"):
        models.fid_features = InceptionFeatures(fid["inception_path"], device=device)
        models.fid_reference_images = load_reference_images(fid["reference_dir"], max_images=fid.get("max_reference_images"))
    else:
        missing = "evaluate.fid.inception_path" if not fid.get("inception_path") else "evaluate.fid.reference_dir"
        reason = f"not configured ({missing})"
        logger.warning("FID skipped: %s", reason)
        models.skipped["fid"] = reason
    return models


# The keys of each ``evaluate`` section (conf/base/parameters_evaluate.yml); any other key is an error.
EVALUATE_KEYS = {
    "evaluate": ("device", "tracker", "tracker_options", "static_threshold", "motion_fidelity", "object_track", "clip",
                 "fid", "previews"),
    "evaluate.motion_fidelity": ("mode", "foreground_masks"),
    "evaluate.clip": ("model", "backend", "batch_size", "temporal_pairs"),
    "evaluate.fid": ("inception_path", "reference_dir", "max_reference_images", "min_samples"),
    "evaluate.previews": ("frames_per_video", "cell_height"),
}
# The foreground mask of reference <name> is <foreground_masks>/<name>.png (its first frame, any size).
FOREGROUND_MASK_SUFFIX = ".png"


@dataclass(frozen=True)
class MotionFidelitySettings:
    """``evaluate.static_threshold`` and ``evaluate.motion_fidelity`` (mode, foreground masks folder)."""

    static_threshold: float
    mode: str = "moving"
    foreground_masks: Path | None = None

    @classmethod
    def from_params(cls, evaluate: Mapping[str, Any]) -> MotionFidelitySettings:
        section = dict(evaluate.get("motion_fidelity") or {})
        masks = section.get("foreground_masks")
        settings = cls(static_threshold=float(evaluate["static_threshold"]), mode=str(section.get("mode", "moving")),
                       foreground_masks=Path(masks) if masks else None)
        if settings.mode not in MODES:
            raise ValueError(f"evaluate.motion_fidelity.mode: '{settings.mode}' is not one of {list(MODES)}")
        return settings

    def mask_for(self, name: str) -> np.ndarray | None:
        """DMT's box of reference ``name``'s foreground mask (None when no folder is configured)."""
        if self.foreground_masks is None:
            return None
        path = self.foreground_masks / f"{name}{FOREGROUND_MASK_SUFFIX}"
        if not path.is_file():
            raise ValueError(f"evaluate.motion_fidelity.foreground_masks: {path} is missing (the mask of '{name}')")
        return load_foreground_mask(path)


def motion_tracker(evaluate: Mapping[str, Any]) -> tuple[Tracker, str]:
    """The tracker of ``evaluate.tracker`` with ``evaluate.tracker_options`` and a one-line description.

    A tracker that runs on torch (``cotracker``) gets ``evaluate.device`` unless its options name one.
    """
    name = str(evaluate["tracker"])
    options = dict(evaluate.get("tracker_options") or {})
    description = f"{name} {options}"
    if name == "cotracker" and "device" not in options:
        options["device"] = str(evaluate.get("device", "cpu"))
    return build_tracker(name, **options), description


def evaluate_problems(evaluate: Mapping[str, Any]) -> list[str]:
    """Problems of the tracker and motion fidelity settings and unknown keys of ``evaluate``, one line each."""
    problems: list[str] = []
    for section, known in EVALUATE_KEYS.items():
        values = evaluate if section == "evaluate" else evaluate.get(section.split(".", 1)[1])
        if isinstance(values, Mapping):
            problems += unknown_key_problems(section, values, known)
    problems += tracker_problems(evaluate.get("tracker"), dict(evaluate.get("tracker_options") or {}))
    threshold = evaluate.get("static_threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
        problems.append(f"evaluate.static_threshold: must be a number >= 0 (px), got {threshold!r}")
    section = evaluate.get("motion_fidelity") or {}
    if section.get("mode", "moving") not in MODES:
        problems.append(f"evaluate.motion_fidelity.mode: '{section.get('mode')}' is not one of {list(MODES)}")
    masks = section.get("foreground_masks")
    if masks and not Path(str(masks)).is_dir():
        problems.append(f"evaluate.motion_fidelity.foreground_masks: {masks} is not a folder (null: no mask)")
    return problems
