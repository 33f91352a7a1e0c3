"""One loaded backbone per process, shared by the nodes of a run (loading ZeroScope takes a while)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from motiontune.backbone.loading import Backbone, load_backbone


@lru_cache(maxsize=2)
def _cached(pretrained_model: str, revision: str | None, device: str, dtype: str, local_files_only: bool) -> Backbone:
    return load_backbone(pretrained_model, revision=revision, device=device, dtype=dtype, local_files_only=local_files_only)


def backbone_from_params(params: dict[str, Any]) -> Backbone:
    """Load (or reuse) the backbone described by the ``backbone`` parameters."""
    unknown = set(params) - {"pretrained_model", "revision", "device", "dtype", "local_files_only"}
    if unknown:
        raise ValueError(f"backbone: unknown keys {sorted(unknown)}")
    return _cached(
        str(params["pretrained_model"]),
        params.get("revision"),
        str(params.get("device", "auto")),
        str(params.get("dtype", "float32")),
        bool(params.get("local_files_only", False)),
    )
