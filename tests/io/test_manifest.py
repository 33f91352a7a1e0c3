"""Tests for motiontune.io.manifest: parsing, clear structural errors, select, CSV rows."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from motiontune.io.manifest import ManifestEntry, ManifestError, load_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]

MANIFEST_YAML = """
videos:
  - name: ball_right
    path: ball_right.mp4
    prompt: "a red ball rolling to the right on a gray floor"
    train_prompt: null
    target_prompts:
      - "a blue cube sliding on a wooden table"
  - name: pan-2
    path: shared/pan_frames
    prompt: "camera panning left"
    train_prompt: "camera panning"
    target_prompts: ["a forest", "a city"]
    fps: 10
"""


def entry(**overrides) -> dict:
    """One valid YAML entry with fields replaced (None value removes the key)."""
    raw = {"name": "clip", "path": "clip.mp4", "prompt": "a dog running", "target_prompts": ["a cat running"]}
    raw.update(overrides)
    return {key: value for key, value in raw.items() if value is not None}


def test_load_yaml_manifest(tmp_path: Path) -> None:
    base = tmp_path / "raw"
    entries = load_manifest(yaml.safe_load(MANIFEST_YAML), base)
    assert entries == [
        ManifestEntry(
            name="ball_right",
            path=base / "ball_right.mp4",
            prompt="a red ball rolling to the right on a gray floor",
            train_prompt=None,
            target_prompts=("a blue cube sliding on a wooden table",),
            fps=None,
        ),
        ManifestEntry(
            name="pan-2",
            path=base / "shared" / "pan_frames",
            prompt="camera panning left",
            train_prompt="camera panning",
            target_prompts=("a forest", "a city"),
            fps=10.0,
        ),
    ]


def test_absolute_path_is_kept(tmp_path: Path) -> None:
    (only,) = load_manifest({"videos": [entry(path="/videos/x.mov")]}, tmp_path)
    assert only.path == Path("/videos/x.mov")


@pytest.mark.parametrize("path", ["../secret.mp4", "clips/../../secret.mp4"])
def test_relative_path_may_not_leave_the_manifest_folder(tmp_path: Path, path: str) -> None:
    with pytest.raises(ManifestError) as error:
        load_manifest({"videos": [entry(path=path)]}, tmp_path / "raw")
    assert str(error.value).count("\n") == 0
    assert f"path '{path}' points outside the manifest folder" in str(error.value)
    # ".." that stays inside is fine
    (only,) = load_manifest({"videos": [entry(path="clips/../clip.mp4")]}, tmp_path / "raw")
    assert only.path == tmp_path / "raw" / "clip.mp4"


def test_shipped_sample_manifest_points_at_existing_files() -> None:
    raw_dir = REPO_ROOT / "data" / "01_raw"
    entries = load_manifest(yaml.safe_load((raw_dir / "manifest.yml").read_text()), raw_dir)
    assert [e.name for e in entries] == ["zigzag_right", "orbit_counterclockwise", "ball_right", "camera_pan"]
    assert all(e.path.exists() for e in entries)
    assert all(len(e.target_prompts) == 2 for e in entries)


def test_empty_prompt_is_left_to_validation(tmp_path: Path) -> None:
    (only,) = load_manifest({"videos": [entry(prompt="  ")]}, tmp_path)
    assert only.prompt == ""


@pytest.mark.parametrize(
    ("videos", "message"),
    [
        ([entry(name=None)], "manifest entry #1: missing name"),
        ([entry(name="Ball Right")], "manifest entry 'Ball Right': name must match [a-z0-9_-]+, got 'Ball Right'"),
        ([entry(), entry()], "manifest entry 'clip': duplicate name"),
        ([entry(path=None)], "manifest entry 'clip': missing path"),
        ([entry(prompt=None)], "manifest entry 'clip': missing prompt"),
        ([entry(prompt=123)], "manifest entry 'clip': prompt must be a string, got 123"),
        (
            [entry(target_prompts=[])],
            "manifest entry 'clip': target_prompts must be a non-empty list of non-empty strings",
        ),
        (
            [entry(target_prompts=["a cat", ""])],
            "manifest entry 'clip': target_prompts must be a non-empty list of non-empty strings",
        ),
        (
            [entry(target_prompts="a cat")],
            "manifest entry 'clip': target_prompts must be a non-empty list of non-empty strings",
        ),
        ([entry(fps=-3)], "manifest entry 'clip': fps must be a positive number or null, got -3"),
        ([entry(promt="typo")], "manifest entry 'clip': unknown key(s) promt"),
        (["clip.mp4"], "manifest entry #1: must be a mapping"),
        ([], "manifest: lists no videos"),
    ],
    ids=[
        "no-name", "bad-name", "duplicate", "no-path", "no-prompt", "prompt-not-str", "targets-empty",
        "target-blank", "targets-str", "fps-negative", "unknown-key", "not-mapping", "no-videos",
    ],
)  # fmt: skip
def test_structural_errors_name_the_entry(tmp_path: Path, videos: list, message: str) -> None:
    with pytest.raises(ManifestError, match="^" + re.escape(message)):
        load_manifest({"videos": videos}, tmp_path)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"^manifest: unknown top-level key\(s\) video "):
        load_manifest({"video": [entry()]}, tmp_path)


def test_select_keeps_manifest_order(tmp_path: Path) -> None:
    manifest = {"videos": [entry(name="a"), entry(name="b"), entry(name="c")]}
    assert [e.name for e in load_manifest(manifest, tmp_path, select=["c", "a"])] == ["a", "c"]
    assert [e.name for e in load_manifest(manifest, tmp_path, select="b, c")] == ["b", "c"]


def test_select_unknown_name_lists_known_ones(tmp_path: Path) -> None:
    manifest = {"videos": [entry(name="a"), entry(name="b")]}
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest, tmp_path, select=["a", "zzz"])
    assert str(caught.value) == "manifest: unknown video name(s) zzz in select (known: a, b)"


def test_csv_rows_as_list_of_dicts(tmp_path: Path) -> None:
    rows = [
        {
            "name": "ball",
            "path": "ball.mp4",
            "prompt": "a ball rolling",
            "train_prompt": "",
            "target_prompts": "a car driving | a dog running",
            "fps": "",
        },
        {
            "name": "pan",
            "path": "pan",
            "prompt": "",
            "train_prompt": "camera panning",
            "target_prompts": "a forest",
            "fps": "12",
        },
    ]
    ball, pan = load_manifest(rows, tmp_path)
    assert ball == ManifestEntry(
        "ball", tmp_path / "ball.mp4", "a ball rolling", None, ("a car driving", "a dog running"), None
    )
    assert pan == ManifestEntry("pan", tmp_path / "pan", "", "camera panning", ("a forest",), 12.0)


def test_csv_dataframe_with_empty_cells(tmp_path: Path) -> None:
    csv = tmp_path / "manifest.csv"
    csv.write_text(
        "name,path,prompt,train_prompt,target_prompts,fps\n"
        "ball,ball.mp4,a ball rolling,,a car driving|a dog running,\n"
        "pan,pan,,,a forest,8\n"
    )
    ball, pan = load_manifest(pd.read_csv(csv), tmp_path)
    assert (ball.train_prompt, ball.fps, ball.target_prompts) == (None, None, ("a car driving", "a dog running"))
    assert (pan.prompt, pan.fps) == ("", 8.0)


def test_csv_target_prompts_with_empty_piece(tmp_path: Path) -> None:
    rows = [{"name": "x", "path": "x.mp4", "prompt": "p", "target_prompts": "a car||a dog"}]
    with pytest.raises(ManifestError, match=r"^manifest entry 'x': target_prompts must be"):
        load_manifest(rows, tmp_path)
