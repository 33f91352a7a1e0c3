"""Ingest: manifest -> validated clips + metadata table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from motiontune.io.clip import VideoClip
from motiontune.io.manifest import load_manifest
from motiontune.io.references import IngestSettings, prepare_references


def ingest_references(manifest: dict[str, Any], video: dict[str, Any], ingest: dict[str, Any]) -> tuple[dict[str, VideoClip], pd.DataFrame]:
    settings = IngestSettings.from_params(ingest)
    entries = load_manifest(manifest, base_dir=settings.manifest_dir, select=settings.entries)
    clips, rows = prepare_references(
        entries,
        num_frames=int(video["num_frames"]),
        height=int(video["height"]),
        width=int(video["width"]),
        fps=float(video["fps"]),
        frames_fps=float(settings.frames_fps),
        resample_to_fps=bool(settings.resample_to_fps),
        rules=settings.video_rules(int(video["num_frames"])),
        on_error=str(settings.on_error),
    )
    return clips, pd.DataFrame(rows)
