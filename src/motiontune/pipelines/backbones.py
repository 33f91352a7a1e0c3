"""One loaded backbone per process, shared by the nodes of a run (loading ZeroScope takes a while)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from motiontune.backbone.loading import Backbone, BackboneSettings


@lru_cache(maxsize=2)
def _cached(settings: BackboneSettings) -> Backbone:
    return settings.load()


def backbone_from_params(params: dict[str, Any]) -> Backbone:
    """Load (or reuse) the backbone described by the ``backbone`` parameters."""
    return _cached(BackboneSettings.from_params(params))
