"""Motion fidelity must not reward stillness (issue 15, items 6 and 7).

On the old code the sample ``ball_right`` scored 1.000 against itself, against itself played backwards and
against its first frame frozen: the seed grid never touched the disc, every track was still floor, and still
matched still with 1. Here, with synthetic tracks and with real clips through the real ``evaluate`` pipeline
(conf/base catalog and parameters), a frozen output scores < 0.2 against a moving source, reversed motion < 0,
identical motion > 0.95 and the same motion with another object and background > 0.9.

The ``dmt`` mode is checked against DMT's formula (``motion_fidelity_score.py``) on examples computed by hand.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from motiontune.metrics import Tracks, build_tracker, motion_fidelity

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF = PROJECT_ROOT / "conf" / "base"
EVALUATE = yaml.safe_load((CONF / "parameters_evaluate.yml").read_text())["evaluate"]
VIDEO = yaml.safe_load((CONF / "parameters.yml").read_text())["video"]
STATIC = float(EVALUATE["static_threshold"])


# ---------------------------------------------------------------------------- synthetic tracks


def grid_tracks(moving: np.ndarray, step: tuple[float, float], num_frames: int = 8) -> Tracks:
    """A 10x10 grid of tracks on a 64x64 frame; the tracks flagged in ``moving`` (100,) go ``step`` px per frame."""
    xs, ys = np.meshgrid(np.linspace(4, 59, 10), np.linspace(4, 59, 10))
    start = np.stack([xs.ravel(), ys.ravel()], axis=-1)
    times = np.arange(num_frames, dtype=np.float64)[None, :, None]
    velocity = np.where(moving[:, None], np.asarray(step, dtype=np.float64), 0.0)[:, None, :]
    positions = (start[:, None, :] + times * velocity).astype(np.float32)
    return Tracks(positions, np.ones(positions.shape[:2], dtype=bool), (64, 64))


def first(count: int) -> np.ndarray:
    flags = np.zeros(100, dtype=bool)
    flags[:count] = True
    return flags


# The example: 10% of the source's points (an object) move right 1 px per frame (7 px over the clip,
# beyond the 2 px static threshold), the rest stand still.
SOURCE = grid_tracks(first(10), (1.0, 0.0))


def test_a_frozen_output_does_not_score_like_the_motion() -> None:
    frozen = motion_fidelity(SOURCE, grid_tracks(first(0), (0.0, 0.0)), STATIC)
    opposite = motion_fidelity(SOURCE, grid_tracks(first(10), (-1.0, 0.0)), STATIC)
    same = motion_fidelity(SOURCE, SOURCE, STATIC)
    # Another object: a quarter of the frame, other points, the same motion.
    other = motion_fidelity(SOURCE, grid_tracks(np.arange(100) % 4 == 1, (1.0, 0.0)), STATIC)
    # Old code: frozen 0.95 (still floor matched still floor), opposite 0.90.
    assert frozen.score < 0.2
    assert opposite.score < 0.0
    assert same.score > 0.95
    assert other.score > 0.9
    # How many tracks were static on each side is reported.
    assert (frozen.num_source_static, frozen.num_output_static) == (90, 100)
    assert (other.num_source_static, other.num_output_static) == (90, 75)


def test_score_stays_finite_when_nothing_moves() -> None:
    still = grid_tracks(first(0), (0.0, 0.0))
    result = motion_fidelity(still, still, STATIC)
    # Old code: 1.0 (static vs static counted as agreement).
    assert result.score == 0.0 and math.isfinite(result.output_to_source) and math.isfinite(result.source_to_output)
    assert result.warning is not None and "no track moves" in result.warning
    assert result.num_source_static == result.num_output_static == 100


def test_static_threshold_is_distance_from_the_start() -> None:
    # A steady 0.3 px per frame ends 2.1 px from its start after 7 steps: it moves (threshold 2 px), though
    # its displacement sequence's norm is only 0.3 sqrt(7) = 0.79.
    drift = grid_tracks(first(10), (0.3, 0.0))
    assert motion_fidelity(drift, drift, 2.0).num_source_static == 90
    # A 1 px back-and-forth jitter never gets farther than 1 px: static, though its norm is sqrt(7) = 2.6.
    positions = SOURCE.positions.copy()
    positions[:10, :, 0] = positions[:10, :1, 0] + (np.arange(8) % 2)[None, :]
    jitter = Tracks(positions, SOURCE.visible, SOURCE.frame_size)
    assert motion_fidelity(jitter, jitter, 2.0).num_source_static == 100


# ---------------------------------------------------------------------------- DMT's formula


def tracks_from_steps(steps: list[list[tuple[float, float]]], ids: list[int] | None = None) -> Tracks:
    """Tracks starting at (10, 10) + 5 px per track, following the given per-frame displacements."""
    disp = np.asarray(steps, dtype=np.float64)
    start = np.array([[10.0 + 5 * i, 10.0] for i in range(len(steps))])[:, None, :]
    positions = np.concatenate([start, start + np.cumsum(disp, axis=1)], axis=1).astype(np.float32)
    query_ids = None if ids is None else np.asarray(ids, dtype=np.int64)
    return Tracks(positions, np.ones(positions.shape[:2], dtype=bool), (64, 64), query_ids)


# Unit displacements: s0 (1, 0), (1, 0); s1 (0, 1), (1, 1)/sqrt2; o0 (1, 0), (0, 1); o1 (0, -1), (1, 0).
DMT_SOURCE = [[(1.0, 0.0), (1.0, 0.0)], [(0.0, 1.0), (1.0, 1.0)]]
DMT_OUTPUT = [[(2.0, 0.0), (0.0, 3.0)], [(0.0, -1.0), (1.0, 0.0)]]
R = 1.0 / math.sqrt(2.0)
# Per-frame cosines averaged over the two frames, by hand:
SIM = {("o0", "s0"): (1 + 0) / 2, ("o0", "s1"): (0 + R) / 2, ("o1", "s0"): (0 + 1) / 2, ("o1", "s1"): (-1 + R) / 2}


def test_dmt_mode_reproduces_their_formula_by_hand() -> None:
    result = motion_fidelity(tracks_from_steps(DMT_SOURCE), tracks_from_steps(DMT_OUTPUT), STATIC, mode="dmt")
    # DMT subtracts the identity (same grid seed): row o0 = [0.5 - 1, R/2], row o1 = [0.5, (R - 1)/2 - 1].
    row_max = [max(SIM["o0", "s0"] - 1, SIM["o0", "s1"]), max(SIM["o1", "s0"], SIM["o1", "s1"] - 1)]
    assert row_max == [R / 2, 0.5]
    assert result.score == pytest.approx((R / 2 + 0.5) / 2, abs=1e-12)
    assert result.output_to_source == result.score and result.mode == "dmt" and result.warning is None
    # The other direction (for information): rows s0 = [0.5 - 1, 0.5], s1 = [R/2, (R - 1)/2 - 1].
    assert result.source_to_output == pytest.approx((0.5 + R / 2) / 2, abs=1e-12)


def test_dmt_identity_follows_the_grid_seeds() -> None:
    # The output's tracks started from the other seed each: the identity now hits (o0, s1) and (o1, s0).
    output = tracks_from_steps(DMT_OUTPUT, ids=[1, 0])
    result = motion_fidelity(tracks_from_steps(DMT_SOURCE), output, STATIC, mode="dmt")
    expected = (max(SIM["o0", "s0"], SIM["o0", "s1"] - 1) + max(SIM["o1", "s0"] - 1, SIM["o1", "s1"])) / 2
    assert expected == pytest.approx((0.5 + (R - 1) / 2) / 2)
    assert result.score == pytest.approx(expected, abs=1e-12)
    # One track each, the same motion: similarity 1, minus the identity = 0 (their code's quirk).
    single = tracks_from_steps([[(1.0, 0.0), (0.0, 1.0)]])
    assert motion_fidelity(single, single, STATIC, mode="dmt").score == pytest.approx(0.0, abs=1e-12)


def test_dmt_zero_displacement_is_nan_as_in_their_code() -> None:
    # A source point that stops for a frame: 0/0 in its per-frame normalisation, NaN in its column, so every
    # row maximum is NaN (torch.max propagates NaN) and so is DMT's score.
    source = tracks_from_steps([[(1.0, 0.0), (0.0, 0.0)], [(0.0, 1.0), (1.0, 1.0)]])
    result = motion_fidelity(source, tracks_from_steps(DMT_OUTPUT), STATIC, mode="dmt")
    assert math.isnan(result.score)
    assert result.warning is not None and "1 source" in result.warning
    with pytest.raises(ValueError, match="mode"):
        motion_fidelity(source, source, STATIC, mode="dtm")


# ---------------------------------------------------------------------------- real clips


def ingest(manifest_dir: Path, name: str, path: str) -> np.ndarray:
    """A clip through the real ingest node at the configured video size."""
    from motiontune.pipelines.ingest.nodes import ingest_references

    params = {**yaml.safe_load((CONF / "parameters_ingest.yml").read_text())["ingest"],
              "manifest_dir": str(manifest_dir), "entries": None}
    entry = {"name": name, "path": path, "prompt": "a red circle moving right", "train_prompt": None,
             "target_prompts": ["a blue square"], "fps": None}
    clips, _ = ingest_references({"videos": [entry]}, VIDEO, params)
    return clips[name].frames


@pytest.fixture(scope="module")
def ball_right() -> np.ndarray:
    return ingest(PROJECT_ROOT / "data" / "01_raw", "ball_right", "ball_right.mp4")


def blue_square_on_other_floor(rng: np.random.Generator) -> np.ndarray:
    """The sample's ball_right with a blue square over a warmer, darker floor: the same path, frame by frame."""
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    import make_sample_data as sample

    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, (sample.HEIGHT, sample.WIDTH)).astype(np.float32), (0, 0), 1.5)
    grey = np.clip(110 + 35 * noise / noise.std(), 0, 255)
    floor = np.stack([grey, 0.9 * grey, 0.8 * grey], axis=-1).astype(np.uint8)
    radius = 10  # make_ball_right's disc radius and path
    frames = []
    for x in np.linspace(radius + 4, sample.WIDTH - radius - 5, sample.NUM_FRAMES):
        frame, cx, cy = floor.copy(), int(round(x)), sample.HEIGHT // 2 + 8
        cv2.rectangle(frame, (cx - 9, cy - 9), (cx + 9, cy + 9), (30, 60, 230), thickness=-1)
        frames.append(frame)
    return np.stack(frames)


def disc_mask(frame: np.ndarray) -> np.ndarray:
    """The red disc of ball_right: red channel well above green (the floor is grey)."""
    return frame[..., 0].astype(int) - frame[..., 1].astype(int) > 100


def test_default_tracker_follows_the_disc_of_ball_right(ball_right: np.ndarray) -> None:
    tracker = build_tracker(EVALUATE["tracker"], **EVALUATE["tracker_options"])
    tracks = tracker.track(ball_right)
    on_disc = disc_mask(ball_right[0])[np.round(tracks.positions[:, 0, 1]).astype(int),
                                       np.round(tracks.positions[:, 0, 0]).astype(int)]
    # Old defaults: no seed on the disc (8 px margin), 0 tracks on it.
    assert on_disc.sum() >= 15
    ys, xs = np.nonzero(disc_mask(ball_right[-1]))
    _, xs0 = np.nonzero(disc_mask(ball_right[0]))
    travel = xs.mean() - xs0.mean()  # the disc's centroid moves ~12 px right
    assert travel > 8
    moved = tracks.positions[on_disc, -1] - tracks.positions[on_disc, 0]
    assert np.median(moved[:, 0]) == pytest.approx(travel, abs=2.0)
    assert np.all(np.abs(np.median(moved[:, 1])) < 1.0)


def rebase(conf: object, root: Path) -> object:
    """A catalog entry with its data/ paths moved under ``root``."""
    if isinstance(conf, dict):
        return {key: str(root / value) if key in ("path", "filepath") and str(value).startswith("data/")
                else rebase(value, root) for key, value in conf.items()}
    return conf


def run_evaluate_pipeline(work: Path, cases: dict[str, tuple[np.ndarray, list[tuple[str, np.ndarray]]]],
                          **motion_fidelity_options: object) -> dict[str, dict]:
    """The evaluate pipeline with the project's catalog (under ``work``) and parameters, CLIP switched off:
    ``cases`` maps a reference name to (reference frames, [(prompt, generated frames), ...])."""
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog
    from kedro.runner import SequentialRunner

    from motiontune.io.clip import VideoClip
    from motiontune.parameters import parameter_problems
    from motiontune.pipelines.evaluate.pipeline import create_pipeline
    from motiontune.generation.generate import video_id

    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    pipeline = create_pipeline()
    names = pipeline.datasets() - {"params:evaluate", "params:world"}
    catalog = DataCatalog.from_config(rebase({k: v for k, v in loader["catalog"].items() if k in names}, work))
    evaluate = dict(loader["parameters"]["evaluate"])
    evaluate["clip"] = {**evaluate["clip"], "model": None}
    evaluate["motion_fidelity"] = {**(evaluate.get("motion_fidelity") or {}), **motion_fidelity_options}
    assert not [p for p in parameter_problems({"video": VIDEO, "evaluate": evaluate}) if p.startswith("evaluate")]
    catalog["params:evaluate"] = evaluate
    catalog["params:world"] = loader["parameters"]["world"]
    fps = float(VIDEO["fps"])
    catalog.save("reference_clips", {name: VideoClip(frames, fps) for name, (frames, _) in cases.items()})
    catalog.save("clip_metadata", pd.DataFrame(
        [{"name": name, "target_prompts": "|".join(p for p, _ in outputs)} for name, (_, outputs) in cases.items()]))
    catalog.save("generated_videos", {video_id(name, index, prompt): VideoClip(frames, fps)
                                      for name, (_, outputs) in cases.items()
                                      for index, (prompt, frames) in enumerate(outputs)})
    SequentialRunner().run(pipeline, catalog)
    return {name: json.loads((work / "data/08_reporting" / name / "metrics.json").read_text()) for name in cases}


def variants(frames: np.ndarray, other: np.ndarray) -> list[tuple[str, np.ndarray]]:
    return [("same", frames), ("reversed", np.ascontiguousarray(frames[::-1])),
            ("frozen", np.repeat(frames[:1], len(frames), axis=0)), ("other", other)]


@pytest.fixture(scope="module")
def world_clips() -> tuple[np.ndarray, np.ndarray]:
    """A red circle moving right over texture, and a blue square moving the same way over a gradient."""
    from motiontune.world.generator import render_sample
    from motiontune.world.spec import WorldSpec

    spec = WorldSpec.from_params(yaml.safe_load((CONF / "parameters_world.yml").read_text())["world"])
    params = {"direction": "right", "speed": "fast"}
    reference = render_sample(spec, "translate", params=params, colour="red", shape="circle", background="texture", seed=3)
    other = render_sample(spec, "translate", params=params, colour="blue", shape="square", background="gradient", seed=4)
    return reference.frames, other.frames


def test_evaluate_pipeline_on_real_clips(tmp_path: Path, ball_right: np.ndarray,
                                         world_clips: tuple[np.ndarray, np.ndarray]) -> None:
    from motiontune.io.video import write_video

    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    import make_sample_data as sample

    write_video(tmp_path / "square.mp4", blue_square_on_other_floor(np.random.default_rng(5)), sample.FPS, crf=23)
    other_ball = ingest(tmp_path, "square", "square.mp4")
    reports = run_evaluate_pipeline(tmp_path / "project", {
        "ball_right": (ball_right, variants(ball_right, other_ball)),
        "world": (world_clips[0], variants(*world_clips)),
    })
    for name, report in reports.items():
        scores = {video["prompt"]: video["motion_fidelity"] for video in report["videos"]}
        # Old code, ball_right: same, reversed and frozen all 1.000; world: reversed 0.41, frozen 0.70, other 0.77.
        assert scores["same"] > 0.95, (name, scores)
        assert scores["reversed"] < 0.0, (name, scores)
        assert scores["frozen"] < 0.2, (name, scores)
        assert scores["other"] > 0.9, (name, scores)
        frozen = next(video for video in report["videos"] if video["prompt"] == "frozen")
        assert frozen["num_output_static_tracks"] == frozen["num_output_tracks"] > 0
        assert 0 < frozen["num_reference_static_tracks"] < frozen["num_reference_tracks"]
        assert report["models"]["motion_fidelity"].startswith("moving")
        # The object track (evaluate.object_track, on by default), measured: same 1.00, reversed -0.97 / -0.99,
        # frozen 0.00, the other object over another background 0.94 / 0.98.
        objects = {video["prompt"]: video["object_trajectory_similarity"] for video in report["videos"]}
        assert objects["same"] > 0.95 and objects["other"] > 0.85, (name, objects)
        assert objects["reversed"] < -0.9 and objects["frozen"] == 0.0, (name, objects)


def test_evaluate_pipeline_seeds_in_the_foreground_box(tmp_path: Path, ball_right: np.ndarray) -> None:
    # DMT's use_mask: a mask of the reference's first frame; both clips are seeded in its bounding box only.
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = disc_mask(ball_right[0])
    cv2.imwrite(str(masks / "ball_right.png"), mask.astype(np.uint8) * 255)
    rows, cols = np.nonzero(mask)
    # The configured grid, and DMT's box rows [min, max), cols [min, max), by hand.
    options = EVALUATE["tracker_options"]
    side = np.linspace(options["margin"], VIDEO["width"] - 1 - options["margin"], options["grid_size"])
    in_box = lambda values, low, high: int(((np.round(values) >= low) & (np.round(values) < high)).sum())  # noqa: E731
    box_seeds = in_box(side, cols.min(), cols.max()) * in_box(side, rows.min(), rows.max())
    reports = run_evaluate_pipeline(tmp_path / "project", {"ball_right": (ball_right, variants(ball_right, ball_right))},
                                    foreground_masks=str(masks))
    videos = {video["prompt"]: video for video in reports["ball_right"]["videos"]}
    assert 0 < videos["same"]["num_reference_tracks"] <= box_seeds < 1024 // 4
    assert videos["same"]["motion_fidelity"] > 0.95
    # Seeded in the box, the reference's tracks are mostly the disc's (unmasked: 800 of 925 are still floor).
    assert videos["same"]["num_reference_static_tracks"] < videos["same"]["num_reference_tracks"] / 2
    # The reversed clip starts with the disc at the other end: its box holds still floor only, as in DMT.
    assert videos["reversed"]["motion_fidelity"] < 0.2 and videos["frozen"]["motion_fidelity"] < 0.2
    assert "foreground" in reports["ball_right"]["models"]["motion_fidelity"]


# ---------------------------------------------------------------------------- masks and settings


def test_foreground_box_is_dmts_rectangle() -> None:
    from motiontune.metrics.trackers import foreground_box

    mask = np.zeros((8, 10), dtype=np.uint8)
    mask[2, 4] = mask[5, 3] = mask[4, 7] = 255
    box = foreground_box(mask)
    # DMT: box[min_row:max_row, min_col:max_col] = 1, so rows 2-4 and cols 3-6 (last row / column left out).
    expected = np.zeros((8, 10), dtype=bool)
    expected[2:5, 3:7] = True
    np.testing.assert_array_equal(box, expected)
    with pytest.raises(ValueError, match="empty"):
        foreground_box(np.zeros((4, 4)))


def test_lucas_kanade_seeds_only_on_the_mask() -> None:
    from motiontune.metrics import OpenCVLucasKanadeTracker

    tracker = OpenCVLucasKanadeTracker(grid_size=4, margin=1)
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    frames[:] = frames[:1]
    # Seeds on x, y in {1, 10.67, 20.33, 30}; the mask covers x, y in [9, 22): the middle 2x2 seeds, ids 5 6 9 10.
    mask = np.zeros((32, 32), dtype=bool)
    mask[9:22, 9:22] = True
    tracks = tracker.track(frames, mask=mask)
    assert tracks.ids.tolist() == [5, 6, 9, 10]
    # A mask of another size is resized to the frame (nearest): the same seeds.
    assert tracker.track(frames, mask=cv2.resize(mask.astype(np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST)).ids.tolist() == [5, 6, 9, 10]


def test_evaluate_settings_are_checked_before_work(tmp_path: Path) -> None:
    from motiontune.parameters import ParameterError, check_parameters, parameter_problems

    def problems(**changes: object) -> list[str]:
        evaluate = {**EVALUATE, **changes}
        return [p for p in parameter_problems({"video": VIDEO, "evaluate": evaluate}) if p.startswith("evaluate")]

    assert problems() == []
    assert problems(static_treshold=1.0) == ["evaluate.static_treshold: unknown key (did you mean 'static_threshold'?)"]
    assert problems(tracker_options={**EVALUATE["tracker_options"], "win_sise": 5}) == [
        "evaluate.tracker_options.win_sise: unknown key (did you mean 'win_size'?)"]
    assert problems(motion_fidelity={"mode": "dtm"}) == [
        "evaluate.motion_fidelity.mode: 'dtm' is not one of ['moving', 'dmt']"]
    missing = tmp_path / "no-masks"
    assert problems(motion_fidelity={"mode": "moving", "foreground_masks": str(missing)}) == [
        f"evaluate.motion_fidelity.foreground_masks: {missing} is not a folder (null: no mask)"]
    with pytest.raises(ParameterError, match="evaluate.tracker: 'kanade'"):
        check_parameters({"video": VIDEO, "evaluate": {**EVALUATE, "tracker": "kanade"}})
