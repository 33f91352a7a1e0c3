"""Ingest: manifest -> validated clips + metadata table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from motiontune.io.clip import VideoClip
from motiontune.io.manifest import load_manifest
from motiontune.io.validation import VideoRules
from motiontune.io.references import prepare_references


def ingest_references(manifest: dict[str, Any], video: dict[str, Any], ingest: dict[str, Any]) -> tuple[dict[str, VideoClip], pd.DataFrame]:
    entries = load_manifest(manifest, base_dir=ingest["manifest_dir"], select=ingest.get("entries"))
    clips, rows = prepare_references(
        entries,
        num_frames=int(video["num_frames"]),
        height=int(video["height"]),
        width=int(video["width"]),
        fps=float(video["fps"]),
        frames_fps=float(ingest["frames_fps"]),
        resample_to_fps=bool(ingest["resample_to_fps"]),
        rules=VideoRules(min_frames=int(video["num_frames"]), **ingest["rules"]),
        on_error=str(ingest.get("on_error", "stop")),
    )
    return clips, pd.DataFrame(rows)
