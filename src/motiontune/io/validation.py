"""Great Expectations checks on the per-video metadata table.

:func:`video_table` probes every manifest entry into one row of metadata;
:func:`validate_video_table` runs GX 1.x expectations over that table and turns
each failing (row, rule) into one line ``"<path>: <rule>"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from motiontune.errors import UserError
from motiontune.io.manifest import ManifestEntry
from motiontune.io.video import probe_video
from motiontune.sections import build_section

VIDEO_TABLE_COLUMNS: tuple[str, ...] = (
    "name",
    "path",
    "prompt",
    "readable",
    "num_frames",
    "fps",
    "height",
    "width",
    "error",
)

# Rule ids, in the order messages are reported for one video.
_RULE_ORDER: tuple[str, ...] = ("readable", "frames", "fps", "size", "aspect", "prompt")
# An unreadable file has no frames/fps/size worth reporting; prompt problems still count.
_RULES_SKIPPED_WHEN_UNREADABLE = frozenset({"frames", "fps", "size", "aspect"})


@dataclass(frozen=True)
class VideoRules:
    """Limits every reference video must meet (sizes in pixels, per side)."""

    min_frames: int
    min_fps: float = 1.0
    max_fps: float = 240.0
    min_side: int = 16
    max_side: int = 8192
    # Longer side / shorter side. Center-cropping a 32:9 clip to a square keeps under a third of it.
    max_aspect_ratio: float = 4.0


@dataclass(frozen=True)
class VideoLimits:
    """``ingest.rules`` (conf/base/parameters_ingest.yml): the Great Expectations limits on each reference video;
    :meth:`rules` adds ``min_frames`` (``video.num_frames``) to make the :class:`VideoRules`."""

    min_fps: float = 1.0
    max_fps: float = 240.0
    min_side: int = 16
    max_side: int = 8192  # a video declaring a larger side is rejected without being decoded
    max_aspect_ratio: float = 4.0  # longer side / shorter side; center-cropping beyond that keeps little of the frame

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> VideoLimits:
        """Build from ``ingest.rules`` (None = defaults; unknown keys and range errors raise)."""
        return build_section(cls, params, "ingest.rules")

    def rules(self, min_frames: int) -> VideoRules:
        return VideoRules(min_frames=min_frames, **asdict(self))

    def problems(self) -> list[str]:
        problems = []
        if not _number(self.min_fps) or self.min_fps <= 0:
            problems.append(f"min_fps: must be a positive number, got {self.min_fps!r}")
        if not _number(self.max_fps) or (_number(self.min_fps) and self.max_fps < self.min_fps):
            problems.append(f"max_fps: must be a number >= min_fps, got {self.max_fps!r}")
        if not _integer(self.min_side) or self.min_side < 1:
            problems.append(f"min_side: must be a positive integer, got {self.min_side!r}")
        if not _integer(self.max_side) or (_integer(self.min_side) and self.max_side < self.min_side):
            problems.append(f"max_side: must be an integer >= min_side, got {self.max_side!r}")
        if not _number(self.max_aspect_ratio) or self.max_aspect_ratio < 1:
            problems.append(f"max_aspect_ratio: must be a number >= 1 (longer side / shorter side), got {self.max_aspect_ratio!r}")
        return problems


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class VideoValidationError(ValueError, UserError):
    """Raised with every problem found; first line counts them, one problem per line after."""

    def __init__(self, messages: Sequence[str]) -> None:
        self.messages = list(messages)
        count = len(self.messages)
        summary = f"{count} problem{'s' if count != 1 else ''} with the reference videos:"
        super().__init__("\n".join([summary, *self.messages]))


def _display_path(path: Path, relative_to: Path) -> str:
    """``path`` relative to ``relative_to`` when inside it (shorter, machine-independent)."""
    try:
        return Path(os.path.relpath(path, relative_to)).as_posix() if path.is_relative_to(relative_to) else str(path)
    except ValueError:  # different drives on Windows
        return str(path)


def video_table(
    entries: Sequence[ManifestEntry],
    frames_fps: float,
    relative_to: str | os.PathLike[str] | None = None,
    max_side: int | None = None,
) -> pd.DataFrame:
    """Probe each entry into one row: name, path, prompt, readable, num_frames, fps, height, width, error.

    ``frames_fps`` is the rate of a folder of frames unless the entry sets
    ``fps``. ``path`` is written relative to ``relative_to`` (default: the
    current directory, i.e. the project root under Kedro) when inside it. A
    video declaring a side over ``max_side`` is not decoded (see :func:`probe_video`).
    """
    root = Path(relative_to) if relative_to is not None else Path.cwd()
    rows: list[dict[str, Any]] = []
    for entry in entries:
        info = probe_video(entry.path, frames_fps=entry.fps if entry.fps is not None else frames_fps, max_side=max_side)
        rows.append(
            {
                "name": entry.name,
                "path": _display_path(entry.path, root.absolute()),
                "prompt": entry.prompt,
                "readable": info.readable,
                "num_frames": info.num_frames,
                "fps": info.fps,
                "height": info.height,
                "width": info.width,
                "error": info.error,
            }
        )
    table = pd.DataFrame(rows, columns=list(VIDEO_TABLE_COLUMNS))
    return table.astype(
        {"readable": bool, "num_frames": "int64", "fps": "float64", "height": "int64", "width": "int64"}
    )


def _expectations(rules: VideoRules) -> list[Any]:
    """The GX expectations, each tagged with ``meta["rule"]`` to map failures back to messages."""
    import great_expectations.expectations as gxe  # ~2 s import: only when validating

    return [
        gxe.ExpectColumnValuesToBeInSet(column="readable", value_set=[True], meta={"rule": "readable"}),
        gxe.ExpectColumnValuesToBeBetween(column="num_frames", min_value=rules.min_frames, meta={"rule": "frames"}),
        gxe.ExpectColumnValuesToBeBetween(
            column="fps", min_value=rules.min_fps, max_value=rules.max_fps, meta={"rule": "fps"}
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="height", min_value=rules.min_side, max_value=rules.max_side, meta={"rule": "size"}
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="width", min_value=rules.min_side, max_value=rules.max_side, meta={"rule": "size"}
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="aspect_ratio", max_value=rules.max_aspect_ratio, meta={"rule": "aspect"}
        ),
        # Regex expectations skip nulls, so null and blank prompts need one expectation each.
        gxe.ExpectColumnValuesToNotBeNull(column="prompt", meta={"rule": "prompt"}),
        gxe.ExpectColumnValuesToMatchRegex(column="prompt", regex=r"\S", meta={"rule": "prompt"}),
    ]


def _run_expectations(table: pd.DataFrame, rules: VideoRules) -> dict[int, set[str]]:
    """Validate with an ephemeral GX context; returns {row position: failed rule ids}."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # In-memory, no analytics (no network here) and no progress bars in pipeline logs.
    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch_definition = (
        context.data_sources.add_pandas("reference_videos")
        .add_dataframe_asset("video_table")
        .add_batch_definition_whole_dataframe("all_videos")
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": table})
    suite = gx.ExpectationSuite(name="reference_videos", expectations=_expectations(rules))
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})

    failures: dict[int, set[str]] = {}
    for expectation_result in result.results:
        if expectation_result.success:
            continue
        rule = expectation_result.expectation_config.meta["rule"]
        if expectation_result.exception_info and expectation_result.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"Great Expectations could not evaluate rule '{rule}': "
                f"{expectation_result.exception_info.get('exception_message')}"
            )
        for row in expectation_result.result.get("unexpected_index_list") or []:
            failures.setdefault(int(row), set()).add(rule)
    return failures


def _message(row: pd.Series, rule: str, rules: VideoRules) -> str:
    path = row["path"]
    if rule == "readable":
        return f"{path}: unreadable video ({row['error'] or 'unknown reason'})"
    if rule == "frames":
        return f"{path}: has {row['num_frames']} frames, fewer than num_frames={rules.min_frames}"
    if rule == "fps":
        return f"{path}: fps {row['fps']:g} outside [{rules.min_fps:g}, {rules.max_fps:g}]"
    if rule == "size":
        return (
            f"{path}: size {row['width']}x{row['height']} outside "
            f"[{rules.min_side}, {rules.max_side}] pixels per side"
        )
    if rule == "aspect":
        return (
            f"{path}: aspect ratio {row['width']}x{row['height']} is beyond "
            f"max_aspect_ratio={rules.max_aspect_ratio:g} (longer side / shorter side)"
        )
    return f"{path}: prompt is missing or empty"


def problems_by_video(table: pd.DataFrame, rules: VideoRules) -> dict[str, list[str]]:
    """Check the :func:`video_table` rows against ``rules`` with Great Expectations.

    Rules: readable; num_frames >= min_frames; min_fps <= fps <= max_fps;
    min_side <= height, width <= max_side; longer / shorter side <= max_aspect_ratio;
    prompt not null and not blank.
    Returns ``{entry name: messages}`` for the failing entries only, in table order, each message like
    ``"data/01_raw/y.gif: has 1 frames, fewer than num_frames=8"``; an unreadable video reports only
    that (and a bad prompt).
    """
    missing = [column for column in VIDEO_TABLE_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"video table lacks column(s) {', '.join(missing)}")
    if table.empty:
        return {}
    # GX reports index labels; a fresh 0..n-1 index makes them row positions.
    table = table.reset_index(drop=True)
    shorter, longer = table[["height", "width"]].min(axis=1), table[["height", "width"]].max(axis=1)
    table = table.assign(aspect_ratio=(longer / shorter.where(shorter > 0)).fillna(0.0).astype("float64"))
    failures = _run_expectations(table, rules)

    problems: dict[str, list[str]] = {}
    for position, row in table.iterrows():
        failed = failures.get(int(position), set())
        if not bool(row["readable"]):
            failed = failed - _RULES_SKIPPED_WHEN_UNREADABLE
        messages = [_message(row, rule, rules) for rule in _RULE_ORDER if rule in failed]
        if messages:
            problems[str(row["name"])] = messages
    return problems


def validate_video_table(table: pd.DataFrame, rules: VideoRules) -> list[str]:
    """All messages of :func:`problems_by_video`, in table order; empty when every video passes."""
    return [message for messages in problems_by_video(table, rules).values() for message in messages]


def check_video_table(table: pd.DataFrame, rules: VideoRules) -> None:
    """Raise :class:`VideoValidationError` listing every problem, if there is any."""
    messages = validate_video_table(table, rules)
    if messages:
        raise VideoValidationError(messages)
