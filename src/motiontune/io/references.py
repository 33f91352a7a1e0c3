"""Reference videos from a manifest to validated, resampled, cropped clips plus a metadata table."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motiontune.io.clip import VideoClip
from motiontune.io.manifest import ManifestEntry
from motiontune.io.validation import VideoLimits, VideoRules, VideoValidationError, problems_by_video, video_table
from motiontune.io.video import read_video, resample_frames, resize_center_crop
from motiontune.io.prompts import simplify_prompt
from motiontune.sections import build_section

logger = logging.getLogger(__name__)


ON_ERROR = ("stop", "skip")


@dataclass(frozen=True)
class IngestSettings:
    """The ``ingest`` parameters (conf/base/parameters_ingest.yml); defaults are its values."""

    manifest_dir: str = "data/01_raw"  # relative paths in the manifest are resolved from here
    # None = every manifest entry; or a list of names, e.g. ("ball_right",) (a string is split on commas)
    entries: tuple[str, ...] | str | None = None
    frames_fps: float = 8  # frame rate assumed for a folder of frames (a manifest entry's fps wins)
    resample_to_fps: bool = True  # True: sample at video.fps from the clip's start; False: spread over the whole clip
    on_error: str = "stop"  # stop: a bad entry stops the run before anything is written; skip: leave it out, warn
    rules: VideoLimits = field(default_factory=VideoLimits)  # Great Expectations checks on each reference video
    # H.264 quality of the stored clips (lower = closer to the source). Not read by any node or dataset yet: the
    # reference_clips catalog entry stores clips with VideoDataset's default crf.
    video_crf: int = 12

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> IngestSettings:
        """Build from the ``ingest`` parameters (None = defaults; unknown keys and range errors raise)."""
        return build_section(cls, params, "ingest")

    def video_rules(self, num_frames: int) -> VideoRules:
        """The rules each reference video must meet: ``rules`` with at least ``num_frames`` frames."""
        return self.rules.rules(min_frames=num_frames)

    def problems(self) -> list[str]:
        problems = []
        if not isinstance(self.frames_fps, (int, float)) or isinstance(self.frames_fps, bool) or self.frames_fps <= 0:
            problems.append(f"frames_fps: must be a positive number, got {self.frames_fps!r}")
        if self.on_error not in ON_ERROR:
            problems.append(f"on_error: '{self.on_error}' is not one of {list(ON_ERROR)}")
        if not isinstance(self.video_crf, int) or isinstance(self.video_crf, bool) or not 0 <= self.video_crf <= 51:
            problems.append(f"video_crf: must be an integer in [0, 51] (x264's quality scale), got {self.video_crf!r}")
        return problems


def source_sha256(path: Path) -> str:
    """sha256 of a video file, or of a folder of frames (file names and contents, in name order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode("utf-8"))
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def prepare_references(
    entries: Sequence[ManifestEntry],
    num_frames: int,
    height: int,
    width: int,
    fps: float,
    frames_fps: float,
    resample_to_fps: bool,
    rules: VideoRules,
    on_error: str = "stop",
) -> tuple[dict[str, VideoClip], list[dict[str, Any]]]:
    """Validate every entry first (Great Expectations), then read, resample and crop each.

    Returns clips (num_frames, height, width, 3) at ``fps`` keyed by entry name, and one metadata row per
    entry. ``on_error="stop"``: any failed rule raises :class:`VideoValidationError` naming each file and
    rule before anything is produced, so no partial outputs are written. ``on_error="skip"``: failing
    entries are left out with a warning each, the others go on (an error if none is left).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"ingest.on_error: '{on_error}' is not one of {list(ON_ERROR)}")
    problems = problems_by_video(video_table(entries, frames_fps=frames_fps, max_side=rules.max_side), rules)
    if problems and (on_error == "stop" or len(problems) == len(entries)):
        raise VideoValidationError([message for messages in problems.values() for message in messages])
    for name, messages in problems.items():
        logger.warning("Skipping manifest entry '%s' (ingest.on_error=skip): %s", name, "; ".join(messages))
    entries = [entry for entry in entries if entry.name not in problems]
    clips: dict[str, VideoClip] = {}
    rows: list[dict[str, Any]] = []
    for entry in entries:
        frames, source_fps = read_video(entry.path, frames_fps=entry.fps or frames_fps)
        picked = resample_frames(frames, source_fps, num_frames, fps if resample_to_fps else None, path=entry.path)
        clips[entry.name] = VideoClip(frames=resize_center_crop(picked, height, width), fps=float(fps))
        # The two training prompts a method may choose (see training_prompt); a manifest train_prompt is both.
        train_prompt = entry.train_prompt or entry.prompt
        simplified_train_prompt = entry.train_prompt or simplify_prompt(entry.prompt)
        rows.append(
            {
                "name": entry.name,
                "source_path": str(entry.path),
                "source_sha256": source_sha256(Path(entry.path)),
                "source_frames": int(frames.shape[0]),
                "source_fps": float(source_fps),
                "source_height": int(frames.shape[1]),
                "source_width": int(frames.shape[2]),
                "prompt": entry.prompt,
                "train_prompt": train_prompt,
                "simplified_train_prompt": simplified_train_prompt,
                "target_prompts": " | ".join(entry.target_prompts),
                "num_frames": num_frames,
                "height": height,
                "width": width,
                "fps": float(fps),
            }
        )
        logger.info("Reference '%s': %s -> train prompt '%s' (simplified: '%s')", entry.name, entry.path, train_prompt, simplified_train_prompt)
    return clips, rows


def training_prompt(row: Mapping[str, Any], simplified: bool) -> str:
    """The prompt a reference trains on: ``simplified_train_prompt`` (its appearance-invariant form, VMC sec. 3.2)
    for a method that trains on it, else ``train_prompt`` (the caption). A manifest ``train_prompt`` is both; a
    row made by hand without ``simplified_train_prompt`` trains on ``train_prompt`` either way."""
    if simplified and row.get("simplified_train_prompt"):
        return str(row["simplified_train_prompt"])
    return str(row["train_prompt"])


def training_prompts(row: Mapping[str, Any]) -> tuple[str, str]:
    """(caption prompt, simplified prompt) of a metadata row, as :func:`motiontune.sampling.features.encode_reference` takes them."""
    return training_prompt(row, False), training_prompt(row, True)


def target_prompts(row: dict[str, Any]) -> list[str]:
    """The target prompts stored in a metadata row (``|``-separated, as in CSV manifests)."""
    return [prompt.strip() for prompt in str(row["target_prompts"]).split("|") if prompt.strip()]
