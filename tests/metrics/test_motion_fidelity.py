"""Tests for the point trackers and the Motion Fidelity Score (seed 002 eq. 6).

Synthetic clips are rendered here: a blurred random-block texture (the background, which
pans like a camera) plus a textured square (the object) moving along a known path. Expected
values come from the known motion:

* base scene: background pans right at constant speed; the object moves right for the first
  half of the clip, then down for the second half (an "L").
* For constant-speed sequences the correlation is the cosine between velocities; for the
  L path against a constant pan it is the share of time the two move the same way.

The background pans so that most tracks move; static tracks are left out of the score (they
carry no motion), which ``test_motion_fidelity_stillness.py`` checks on still backgrounds.

Tracker mechanics (border, forward-backward, occlusion) are tested on the classic 64x64 settings
(15 px window, 8 px seed margin); the metric on 64x64 scenes uses the configured defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
import yaml

from motiontune.metrics import (
    TRACKERS,
    MotionFidelity,
    OpenCVLucasKanadeTracker,
    Tracks,
    build_tracker,
    displacements,
    motion_fidelity,
    motion_fidelity_of_videos,
    resample_positions,
    track_correlation,
)

Path2D = Callable[[float], tuple[float, float]]

BASE_SIZE = 64
OBJECT_SIZE = 20

EVALUATE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "conf/base/parameters_evaluate.yml").read_text()
)["evaluate"]
# The configured static threshold (px): what the evaluate pipeline scores with.
STATIC = float(EVALUATE["static_threshold"])


# ---------------------------------------------------------------------------- rendering


def block_texture(rng: np.random.Generator, height: int, width: int, block: int) -> np.ndarray:
    """(height, width) float32 grey texture of random blocks, blurred so LK has gradients."""
    cells = rng.uniform(0, 255, size=(height // block + 1, width // block + 1))
    texture = np.kron(cells, np.ones((block, block)))[:height, :width].astype(np.float32)
    return cv2.GaussianBlur(texture, (0, 0), sigmaX=block / 3)


def shift(image: np.ndarray, dx: float, dy: float, size: int) -> np.ndarray:
    """(size, size) crop whose content is ``image`` moved by (dx, dy), bilinear sub-pixel."""
    # Inverse map: dst(x, y) = src(x - dx, y - dy).
    matrix = np.array([[1, 0, -dx], [0, 1, -dy]], dtype=np.float64)
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def render_scene(
    num_frames: int,
    background_path: Path2D,
    object_path: Path2D | None,
    size: int = BASE_SIZE,
    background_seed: int = 0,
    object_seed: int = 1,
    background_tint: tuple[float, float, float] = (1.0, 1.0, 1.0),
    object_tint: tuple[float, float, float] = (1.0, 0.6, 0.3),
) -> np.ndarray:
    """(num_frames, size, size, 3) uint8 clip; paths give pixels at 64 px, scaled to ``size``.

    Frame i shows clip time t = i / (num_frames - 1), so clips of different length showing
    the same paths have the same motion per unit of clip time.
    """
    scale = size / BASE_SIZE
    rng = np.random.default_rng(background_seed)
    pad = int(32 * scale)
    # Bigger than the frame so a panning crop never runs out of texture.
    background = block_texture(rng, size + 2 * pad, size + 2 * pad, block=max(2, round(4 * scale)))
    object_side = round(OBJECT_SIZE * scale)
    object_texture = block_texture(
        np.random.default_rng(object_seed), object_side, object_side, block=max(2, round(3 * scale))
    )
    object_mask = np.ones_like(object_texture)

    frames = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    for index in range(num_frames):
        t = index / (num_frames - 1) if num_frames > 1 else 0.0
        bg_x, bg_y = background_path(t)
        grey_bg = shift(background, bg_x * scale - pad, bg_y * scale - pad, size)
        colour = grey_bg[..., None] * np.asarray(background_tint, dtype=np.float32)
        if object_path is not None:
            obj_x, obj_y = object_path(t)
            grey_obj = shift(object_texture, obj_x * scale, obj_y * scale, size)
            alpha = shift(object_mask, obj_x * scale, obj_y * scale, size)[..., None]
            obj_colour = grey_obj[..., None] * np.asarray(object_tint, dtype=np.float32)
            colour = colour * (1 - alpha) + obj_colour * alpha
        frames[index] = np.clip(colour, 0, 255).round().astype(np.uint8)
    return frames


# Base motion (64 px units): background pans right by 12 px over the clip; the object
# (top-left corner) goes right 16 px in the first half, then down 16 px in the second half.
def pan_right(t: float) -> tuple[float, float]:
    return 12.0 * t, 0.0


def object_l_path(t: float) -> tuple[float, float]:
    if t < 0.5:
        return 14.0 + 32.0 * t, 14.0
    return 30.0, 14.0 + 32.0 * (t - 0.5)


# The base motion rotated by 90 degrees ((dx, dy) -> (-dy, dx)): pan down; object goes down,
# then left.
def pan_down(t: float) -> tuple[float, float]:
    return 0.0, 12.0 * t


def object_rotated_l_path(t: float) -> tuple[float, float]:
    if t < 0.5:
        return 34.0, 10.0 + 32.0 * t
    return 34.0 - 32.0 * (t - 0.5), 26.0


def no_motion(t: float) -> tuple[float, float]:
    return 0.0, 0.0


@pytest.fixture(scope="module")
def tracker() -> OpenCVLucasKanadeTracker:
    """The configured default tracker (conf/base/parameters_evaluate.yml)."""
    return build_tracker(EVALUATE["tracker"], **EVALUATE["tracker_options"])


@pytest.fixture(scope="module")
def classic() -> OpenCVLucasKanadeTracker:
    """Grey-level LK with a 15 px window, seeds 8 px and the border check 7 px inside (half the window)."""
    return OpenCVLucasKanadeTracker(
        grid_size=16, win_size=15, margin=8, border_margin=7, colour=False, min_eigenvalue=1e-4
    )


@pytest.fixture(scope="module")
def base_video() -> np.ndarray:
    return render_scene(12, pan_right, object_l_path)


@pytest.fixture(scope="module")
def base_tracks(tracker: OpenCVLucasKanadeTracker, base_video: np.ndarray) -> Tracks:
    return tracker.track(base_video)


# ---------------------------------------------------------------------------- tracker


def test_tracker_follows_pure_translation(classic: OpenCVLucasKanadeTracker) -> None:
    # 8 frames, the whole texture moves +2 px per frame in x (integer shifts, exact pixels).
    frames = render_scene(8, lambda t: (14.0 * t, 0.0), None)
    tracks = classic.track(frames)

    assert tracks.positions.dtype == np.float32
    assert tracks.positions.shape[1:] == (8, 2)
    assert tracks.visible.shape == tracks.positions.shape[:2] and tracks.visible.all()
    assert tracks.frame_size == (64, 64)
    disp = displacements(tracks.positions)
    np.testing.assert_allclose(disp[..., 0], 2.0, atol=0.3)
    np.testing.assert_allclose(disp[..., 1], 0.0, atol=0.3)
    # Seeds sit on x = linspace(8, 55, 16) (half window + 1) and points must stay 7 px (half
    # window) inside the frame: those starting beyond x = 56 - 14 = 42 leave it (5 of 16
    # columns), so at most 11 * 16 = 176 of 256 survive.
    assert tracks.num_tracks > 256 // 2
    assert tracks.num_tracks <= 176
    assert np.all(tracks.positions[:, 0, 0] + 14.0 <= 56.0)


def seed_survived(tracks: Tracks, seed: np.ndarray) -> bool:
    """Whether a track starting at ``seed`` (2,) x, y was kept."""
    return bool(np.any(np.all(np.isclose(tracks.positions[:, 0], seed), axis=-1)))


# Seeds whose whole 15 px window lies inside the patch rows 20..43, cols 4..27.
def seeds_deep_inside_patch(seeds: np.ndarray) -> np.ndarray:
    return seeds[
        (seeds[:, 0] >= 4 + 7) & (seeds[:, 0] <= 27 - 7)
        & (seeds[:, 1] >= 20 + 7) & (seeds[:, 1] <= 43 - 7)
    ]


def test_tracker_drops_points_in_randomly_changing_region(
    classic: OpenCVLucasKanadeTracker,
) -> None:
    # Static textured clip whose patch (rows 20..43, cols 4..27) shows a fresh random block
    # texture in every frame: whatever LK matches there, the way back lands elsewhere.
    frames = render_scene(10, no_motion, None)
    rng = np.random.default_rng(123)
    for index in range(len(frames)):
        fresh = np.clip(block_texture(rng, 24, 24, block=3), 0, 255).astype(np.uint8)
        frames[index, 20:44, 4:28] = fresh[..., None]
    seeds = classic.grid_points(64, 64)
    tracks = classic.track(frames)

    inside = seeds_deep_inside_patch(seeds)
    assert len(inside) >= 4
    for seed in inside:
        assert not seed_survived(tracks, seed), seed
    # Far from the patch the clip is still, so those points survive.
    far = seeds[(seeds[:, 0] >= 27 + 12) | (seeds[:, 1] >= 43 + 12) | (seeds[:, 1] <= 20 - 12)]
    assert sum(seed_survived(tracks, seed) for seed in far) >= 0.9 * len(far)


def test_tracker_drops_points_under_flat_occluder(classic: OpenCVLucasKanadeTracker) -> None:
    # From frame 4 on a flat grey card covers the patch: a textureless window gives LK no
    # gradient to solve with (status 0), so points under it are lost.
    frames = render_scene(8, no_motion, None)
    frames[4:, 20:44, 4:28] = 128
    seeds = classic.grid_points(64, 64)
    tracks = classic.track(frames)

    inside = seeds_deep_inside_patch(seeds)
    assert len(inside) >= 4
    for seed in inside:
        assert not seed_survived(tracks, seed), seed
    # Seeds whose window never touches the card see a still clip and survive.
    clear = seeds[(seeds[:, 0] > 27 + 7) | (seeds[:, 1] < 20 - 7) | (seeds[:, 1] > 43 + 7)]
    assert all(seed_survived(tracks, seed) for seed in clear)


def test_tracker_rejects_bad_frames(tracker: OpenCVLucasKanadeTracker) -> None:
    with pytest.raises(ValueError):
        tracker.track(np.zeros((4, 64, 64, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        tracker.track(np.zeros((4, 64, 64), dtype=np.uint8))


def test_grid_points_respect_margin() -> None:
    grid = OpenCVLucasKanadeTracker(grid_size=4, win_size=15, margin=8).grid_points(64, 48)
    assert grid.shape == (16, 2)
    assert grid[:, 0].min() == 8 and grid[:, 0].max() == 47 - 8
    assert grid[:, 1].min() == 8 and grid[:, 1].max() == 63 - 8
    with pytest.raises(ValueError):
        OpenCVLucasKanadeTracker(margin=40).grid_points(64, 64)


def test_registry() -> None:
    assert "opencv_lk" in TRACKERS
    built = build_tracker("opencv_lk", grid_size=4, fb_threshold=0.5)
    assert isinstance(built, OpenCVLucasKanadeTracker)
    assert built.grid_size == 4 and built.fb_threshold == 0.5
    with pytest.raises(ValueError, match="opencv_lk"):
        build_tracker("no_such_tracker")
    # A misspelt option is refused in one line naming it and the closest real one.
    with pytest.raises(ValueError, match="grid_sise.*did you mean 'grid_size'") as error:
        build_tracker("opencv_lk", grid_sise=4)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------- correlation


def test_track_correlation_hand_made() -> None:
    a = np.array([[[1.0, 0.0], [0.0, 2.0], [3.0, -1.0]]])
    orthogonal_in_space = np.array([[[0.0, 1.0], [-2.0, 0.0], [1.0, 3.0]]])
    early = np.array([[[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    late = np.array([[[0.0, 0.0], [0.0, 0.0], [5.0, 0.0]]])

    assert track_correlation(a, a, 0.5)[0, 0] == pytest.approx(1.0)
    assert track_correlation(a, -a, 0.5)[0, 0] == pytest.approx(-1.0)
    # Speed does not matter, only the shape of the motion.
    assert track_correlation(a, 3.0 * a, 0.5)[0, 0] == pytest.approx(1.0)
    assert track_correlation(a, orthogonal_in_space, 0.5)[0, 0] == pytest.approx(0.0)
    # Same direction at different times: no overlap in time, so uncorrelated.
    assert track_correlation(early, late, 0.5)[0, 0] == pytest.approx(0.0)

    # Constant 45-degree gap between the velocities: cos(45 deg) = 1/sqrt(2).
    diagonal = np.array([[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]])
    along_x = np.array([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    assert track_correlation(diagonal, along_x, 0.5)[0, 0] == pytest.approx(1 / np.sqrt(2))


def test_track_correlation_static_guard() -> None:
    moving = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    jitter = np.array([[[0.1, 0.0], [0.0, -0.1]]])  # norm 0.14 < 0.5: static
    zero = np.zeros((1, 2, 2))

    assert track_correlation(jitter, zero, 0.5)[0, 0] == 1.0
    assert track_correlation(jitter, moving, 0.5)[0, 0] == 0.0
    assert track_correlation(moving, zero, 0.5)[0, 0] == 0.0
    # A zero threshold must still not divide 0 by 0.
    assert track_correlation(zero, zero, 0.0)[0, 0] == 1.0
    assert track_correlation(zero, moving, 0.0)[0, 0] == 0.0
    # With a zero threshold the jitter counts as motion again.
    assert track_correlation(jitter, jitter, 0.0)[0, 0] == pytest.approx(1.0)


def test_track_correlation_matrix_layout() -> None:
    source = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]])  # right, down, static
    output = np.array([[[-1.0, 0.0]], [[0.0, 2.0]]])  # left, down
    expected = np.array([[-1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(track_correlation(source, output, 0.5), expected, atol=1e-12)
    with pytest.raises(ValueError):
        track_correlation(source, np.zeros((2, 3, 2)), 0.5)


@settings(max_examples=50, deadline=None)
@given(
    source=arrays(np.float64, (3, 4, 2), elements=st.floats(-5, 5, allow_nan=False)),
    output=arrays(np.float64, (2, 4, 2), elements=st.floats(-5, 5, allow_nan=False)),
    threshold=st.floats(0.0, 2.0),
)
def test_track_correlation_is_bounded_and_finite(
    source: np.ndarray, output: np.ndarray, threshold: float
) -> None:
    correlation = track_correlation(source, output, threshold)
    assert correlation.shape == (3, 2)
    assert np.all(np.isfinite(correlation))
    assert np.all(np.abs(correlation) <= 1.0)
    np.testing.assert_allclose(track_correlation(output, source, threshold), correlation.T)


# ---------------------------------------------------------------------------- score on tracks


def make_tracks(
    positions: list[list[tuple[float, float]]], frame_size: tuple[int, int] = (64, 64)
) -> Tracks:
    """Tracks (P, F, 2) from nested lists, all visible."""
    array = np.asarray(positions, dtype=np.float32)
    return Tracks(array, np.ones(array.shape[:2], dtype=bool), frame_size)


def test_resample_positions_is_exact_for_linear_motion() -> None:
    positions = np.array([[[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]]])
    resampled = resample_positions(positions, 3)
    np.testing.assert_allclose(resampled, [[[0.0, 0.0], [2.0, 4.0], [4.0, 8.0]]])


def test_motion_fidelity_on_hand_made_tracks() -> None:
    # Track 0 moves right 1 px per frame (4 px from its start at the end), track 1 stands still.
    source = make_tracks([[(x, 10.0) for x in range(10, 15)], [(40.0, 40.0)] * 5])
    assert motion_fidelity(source, source, 0.5).score == pytest.approx(1.0)

    # Twice the frame size with twice the motion is the same relative motion.
    bigger = make_tracks(
        [[(2.0 * x, 20.0) for x in range(10, 15)], [(80.0, 80.0)] * 5], frame_size=(128, 128)
    )
    assert motion_fidelity(source, bigger, 0.5).score == pytest.approx(1.0)

    # 9 frames over the same clip: half a pixel per frame, resampled to 5 frames.
    longer = make_tracks([[(10.0 + 0.5 * i, 10.0) for i in range(9)], [(40.0, 40.0)] * 9])
    assert motion_fidelity(source, longer, 0.5).score == pytest.approx(1.0)

    # Moving track reversed: corr(mover, reversed) = -1. The still tracks carry no motion and
    # are only counted, so each side's one moving track has the other's as its best match: -1.
    reversed_tracks = make_tracks([[(x, 10.0) for x in range(14, 9, -1)], [(40.0, 40.0)] * 5])
    result = motion_fidelity(source, reversed_tracks, 0.5)
    assert result.output_to_source == pytest.approx(-1.0)
    assert result.source_to_output == pytest.approx(-1.0)
    assert result.score == pytest.approx(-1.0)
    assert result.num_source_tracks == 2 and result.num_output_tracks == 2
    assert result.num_source_static == 1 and result.num_output_static == 1
    assert result.mode == "moving" and result.warning is None


def test_motion_fidelity_normalises_frame_size() -> None:
    # Source 64 px tall, 128 px wide, track moving (2, 1) px per frame. The output squeezes
    # the width to 64 px, so the same scene motion is (1, 1) px per frame there. In source
    # pixels both are (2, 1): corr 1 (raw pixels would give cos = 3 / sqrt(10) = 0.95).
    wide = make_tracks([[(10.0 + 2 * i, 10.0 + i) for i in range(5)]], frame_size=(64, 128))
    squeezed = make_tracks([[(5.0 + i, 10.0 + i) for i in range(5)]], frame_size=(64, 64))
    assert motion_fidelity(wide, squeezed, 0.5).score == pytest.approx(1.0)
    assert motion_fidelity(squeezed, wide, 0.5).score == pytest.approx(1.0)

    # The static threshold is in source pixels: 0.1 px per step over 4 steps ends 0.4 px from
    # the start, < 0.5 in the 64 px source; the same relative drift in a 640 px output (1 px
    # per step, 4 px in its own pixels) is still 0.4 source pixels, hence static too.
    moving = make_tracks([[(10.0 + i, 10.0) for i in range(5)], [(20.0, 30.0)] * 5])
    drift_large = make_tracks(
        [[(100.0 + i, 100.0) for i in range(5)], [(200.0, 300.0)] * 5], frame_size=(640, 640)
    )
    result = motion_fidelity(moving, drift_large, 0.5)
    assert result.num_output_static == 2 and result.num_source_static == 1
    assert result.score == 0.0 and "output" in result.warning
    # The same 1 px per step in a 64 px output is 1 source px per step: it moves, like the source.
    drift_small = make_tracks([[(10.0 + i, 10.0) for i in range(5)], [(20.0, 30.0)] * 5])
    assert motion_fidelity(moving, drift_small, 0.5).num_output_static == 1


def test_motion_fidelity_directional_terms_differ() -> None:
    # Source: one track right. Output: one right, one left. Output side: best matches 1 and
    # -1 -> 0; source side: best match 1 -> 1; symmetric score 0.5.
    source = make_tracks([[(x, 10.0) for x in range(10, 14)]])
    output = make_tracks(
        [[(x, 10.0) for x in range(10, 14)], [(x, 30.0) for x in range(14, 10, -1)]]
    )
    result = motion_fidelity(source, output, 0.5)
    assert result.output_to_source == pytest.approx(0.0)
    assert result.source_to_output == pytest.approx(1.0)
    assert result.score == pytest.approx(0.5)


def test_motion_fidelity_without_tracks_warns_instead_of_nan() -> None:
    source = make_tracks([[(x, 10.0) for x in range(10, 14)]])
    empty = Tracks(np.zeros((0, 4, 2), np.float32), np.zeros((0, 4), bool), (64, 64))

    result = motion_fidelity(source, empty, 0.5)
    assert result.score == 0.0
    assert result.num_output_tracks == 0
    assert result.warning is not None and "output" in result.warning

    both = motion_fidelity(empty, empty, 0.5)
    assert both.score == 0.0 and "source" in both.warning and "output" in both.warning

    single_frame = make_tracks([[(10.0, 10.0)]])
    result = motion_fidelity(single_frame, single_frame, 0.5)
    assert result.score == 0.0 and result.warning is not None


# ---------------------------------------------------------------------------- score on videos


def score(source: Tracks, output: Tracks) -> MotionFidelity:
    result = motion_fidelity(source, output, STATIC)
    assert np.isfinite(result.score)
    assert -1.0 <= result.score <= 1.0
    assert result.warning is None
    return result


def test_identical_motion_scores_top(
    tracker: OpenCVLucasKanadeTracker, base_video: np.ndarray, base_tracks: Tracks
) -> None:
    # Every track finds itself on the other side: corr = 1.
    result = motion_fidelity_of_videos(base_video, base_video, tracker, STATIC)
    assert result.score > 0.95
    assert result.num_source_tracks == base_tracks.num_tracks > 50


def test_same_motion_new_appearance_scores_high(
    tracker: OpenCVLucasKanadeTracker, base_tracks: Tracks
) -> None:
    restyled = render_scene(
        12,
        pan_right,
        object_l_path,
        background_seed=7,
        object_seed=8,
        background_tint=(0.5, 0.9, 1.0),
        object_tint=(0.2, 1.0, 0.4),
    )
    result = score(base_tracks, tracker.track(restyled))
    assert result.score > 0.9


def test_reversed_motion_scores_clearly_lower(
    tracker: OpenCVLucasKanadeTracker, base_video: np.ndarray, base_tracks: Tracks
) -> None:
    same = score(base_tracks, base_tracks).score
    # Playing the clip backwards: pan left, object up then left. Every source displacement
    # points right and/or down (dx, dy >= 0), every reversed one left and/or up, so no
    # product <a_t, b_t> is positive: every correlation, hence the score, is <= 0 (up to
    # tracker noise). E.g. pan left vs L path = -0.5, reversed L vs L = 0.
    reversed_result = score(base_tracks, tracker.track(np.ascontiguousarray(base_video[::-1])))
    assert reversed_result.score < 0.0
    assert reversed_result.score < same - 0.4


def test_perpendicular_motion_scores_lower(
    tracker: OpenCVLucasKanadeTracker, base_tracks: Tracks
) -> None:
    same = score(base_tracks, base_tracks).score
    # Everything rotated by 90 degrees: pan vs pan = 0; pan down matches the L path's second
    # half (0.5); rotated L vs L = 0 -> expected around 0.25.
    rotated = render_scene(12, pan_down, object_rotated_l_path)
    perpendicular = score(base_tracks, tracker.track(rotated)).score
    assert perpendicular < same - 0.3
    assert perpendicular < 0.6


def test_static_video_gives_finite_scores(
    tracker: OpenCVLucasKanadeTracker, base_tracks: Tracks
) -> None:
    static_tracks = tracker.track(render_scene(12, no_motion, None))
    assert static_tracks.num_tracks > 0
    # Nothing moves on either side: no motion to compare, 0.0 with a warning (was 1.0: static
    # vs static counted as agreement).
    still = motion_fidelity(static_tracks, static_tracks, STATIC)
    assert still.score == 0.0 and "source and output" in still.warning
    assert still.num_source_static == still.num_output_static == static_tracks.num_tracks
    # A still video against a moving one scores 0 both ways.
    for source, output in ((static_tracks, base_tracks), (base_tracks, static_tracks)):
        result = motion_fidelity(source, output, STATIC)
        assert result.score == 0.0 and np.isfinite(result.score) and result.warning


def test_different_length_same_motion_scores_high(
    tracker: OpenCVLucasKanadeTracker, base_tracks: Tracks
) -> None:
    # 8 frames showing the same paths over the same clip time as the 12-frame source.
    shorter = tracker.track(render_scene(8, pan_right, object_l_path))
    assert shorter.num_frames == 8
    assert score(base_tracks, shorter).score > 0.8
    assert score(shorter, base_tracks).score > 0.8


def test_different_size_same_relative_motion_scores_high(
    tracker: OpenCVLucasKanadeTracker, base_tracks: Tracks
) -> None:
    # 96 px clip with every length (paths, object, texture blocks) scaled by 1.5.
    larger = tracker.track(render_scene(12, pan_right, object_l_path, size=96))
    assert larger.frame_size == (96, 96)
    assert score(base_tracks, larger).score > 0.8
    assert score(larger, base_tracks).score > 0.8
