"""Build the optional metric models from configuration, with one clear line for each one skipped."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from motiontune.metrics.clip_scores import ClipScorer
from motiontune.metrics.fid import InceptionFeatures, load_reference_images

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
