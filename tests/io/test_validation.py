"""Tests for motiontune.io.validation: GX checks give exactly one message per failing rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from motiontune.io.manifest import ManifestEntry, load_manifest
from motiontune.io.validation import (
    VIDEO_TABLE_COLUMNS,
    VideoRules,
    VideoValidationError,
    check_video_table,
    validate_video_table,
    video_table,
)
from motiontune.io.video import write_gif, write_video

RULES = VideoRules(min_frames=8)


def frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def make_entry(path: Path, prompt: str = "a ball rolling", fps: float | None = None) -> ManifestEntry:
    return ManifestEntry(path.stem, path, prompt, None, ("a car driving",), fps)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project-like tree: <root>/data/01_raw/<clips>."""
    root = tmp_path_factory.mktemp("project")
    raw = root / "data" / "01_raw"
    write_video(raw / "good.mp4", frames(10), fps=12)
    write_video(raw / "no_prompt.mp4", frames(10), fps=12)
    write_gif(raw / "one.gif", frames(1), fps=10)
    write_gif(raw / "tiny.gif", frames(10, 8, 8), fps=10)
    (raw / "broken.mp4").write_bytes(b"")
    slow = raw / "slow"
    slow.mkdir()
    for index in range(10):
        Image.fromarray(frames(1)[0]).save(slow / f"{index:02d}.png")
    return raw


def messages_for(raw_dir: Path, entry: ManifestEntry) -> list[str]:
    table = video_table([entry], frames_fps=8.0, relative_to=raw_dir.parents[1])
    return validate_video_table(table, RULES)


def test_good_video_has_no_message(raw_dir: Path) -> None:
    assert messages_for(raw_dir, make_entry(raw_dir / "good.mp4")) == []


def test_one_frame_gif(raw_dir: Path) -> None:
    assert messages_for(raw_dir, make_entry(raw_dir / "one.gif")) == [
        "data/01_raw/one.gif: has 1 frames, fewer than num_frames=8"
    ]


def test_empty_prompt(raw_dir: Path) -> None:
    assert messages_for(raw_dir, make_entry(raw_dir / "no_prompt.mp4", prompt="   ")) == [
        "data/01_raw/no_prompt.mp4: prompt is missing or empty"
    ]


def test_unreadable_reports_only_unreadable(raw_dir: Path) -> None:
    assert messages_for(raw_dir, make_entry(raw_dir / "broken.mp4")) == [
        "data/01_raw/broken.mp4: unreadable video (empty file)"
    ]


def test_size_and_fps_rules(raw_dir: Path) -> None:
    assert messages_for(raw_dir, make_entry(raw_dir / "tiny.gif")) == [
        "data/01_raw/tiny.gif: size 8x8 outside [16, 8192] pixels per side"
    ]
    # The entry's fps overrides frames_fps for a folder of frames.
    assert messages_for(raw_dir, make_entry(raw_dir / "slow", fps=0.5)) == [
        "data/01_raw/slow: fps 0.5 outside [1, 240]"
    ]


def test_whole_table_in_manifest_order_and_error(raw_dir: Path) -> None:
    entries = [
        make_entry(raw_dir / "good.mp4"),
        make_entry(raw_dir / "one.gif", prompt=""),
        make_entry(raw_dir / "broken.mp4"),
        make_entry(raw_dir / "slow"),
    ]
    table = video_table(entries, frames_fps=8.0, relative_to=raw_dir.parents[1])
    assert list(table.columns) == list(VIDEO_TABLE_COLUMNS)
    assert table.loc[0, ["readable", "num_frames", "fps", "height", "width"]].tolist() == [True, 10, 12.0, 32, 48]
    assert table.loc[3, "fps"] == 8.0
    expected = [
        "data/01_raw/one.gif: has 1 frames, fewer than num_frames=8",
        "data/01_raw/one.gif: prompt is missing or empty",
        "data/01_raw/broken.mp4: unreadable video (empty file)",
    ]
    assert validate_video_table(table, RULES) == expected
    with pytest.raises(VideoValidationError) as caught:
        check_video_table(table, RULES)
    assert str(caught.value) == "\n".join(["3 problems with the reference videos:", *expected])
    check_video_table(table.iloc[[0, 3]], RULES)  # the good rows alone pass (non-0..n index too)


def test_null_prompt_in_table(raw_dir: Path) -> None:
    table = video_table([make_entry(raw_dir / "good.mp4")], frames_fps=8.0, relative_to=raw_dir.parents[1])
    table["prompt"] = pd.Series([None], dtype=object)
    assert validate_video_table(table, RULES) == ["data/01_raw/good.mp4: prompt is missing or empty"]


def test_shipped_sample_data_passes() -> None:
    raw = Path(__file__).resolve().parents[2] / "data" / "01_raw"
    entries = load_manifest(yaml.safe_load((raw / "manifest.yml").read_text()), raw)
    table = video_table(entries, frames_fps=8.0, relative_to=raw.parents[1])
    assert table["path"].tolist() == [
        "data/01_raw/zigzag_right.mp4",
        "data/01_raw/orbit_counterclockwise.gif",
        "data/01_raw/ball_right.mp4",
        "data/01_raw/camera_pan",
    ]
    assert table["num_frames"].tolist() == [16, 16, 24, 24]
    assert validate_video_table(table, VideoRules(min_frames=16)) == []
