"""The ground-truth-free analyser reads colour, shape and motion of world clips back.

Accuracy floors are the brief's (colour >= 98%, shape >= 90%, translation direction >= 95%); the
measured values (100% on these sets) are in each assertion message.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from motiontune.world import (
    AnalyserConfig,
    VideoAnalysis,
    WorldSample,
    WorldSpec,
    analyse_video,
    render_sample,
    sample_world,
    segment_colours,
)
from motiontune.world.rendering import make_background
from motiontune.world.vocabulary import DIRECTION_NAMES, PALETTE, STATIC, opposite_direction

COLOUR_FLOOR = 0.98
SHAPE_FLOOR = 0.90
DIRECTION_FLOOR = 0.95
# Path kind, rotation, area trend and camera are not in the brief; they get the shape's floor.
MOTION_FLOOR = 0.90
# A generated-looking clip: Gaussian blur (px), half the saturation, grain (0-255 levels).
DEGRADE_BLUR_SIGMA = 1.0
DEGRADE_SATURATION = 0.5
DEGRADE_NOISE_SIGMA = 10.0
REVERSED = {
    "grow": "shrink",
    "shrink": "grow",
    "steady": "steady",
    "zoom_in": "zoom_out",
    "zoom_out": "zoom_in",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
}


def _accuracy(hits: list[bool]) -> float:
    assert hits, "no sample to measure on"
    return float(np.mean(hits))


def _camera_hit(sample: WorldSample, analysis: VideoAnalysis) -> bool:
    truth = sample.truth
    if truth.camera == "static":
        # A still texture reads as static; a flat background gives nothing to track.
        return (
            analysis.camera == STATIC
            if sample.background == "texture"
            else analysis.camera in (STATIC, "unknown")
        )
    if truth.camera == "pan":
        return analysis.camera == "pan" and analysis.background_direction == truth.screen_direction
    return analysis.camera == truth.camera


def test_colour_and_shape_are_recovered(
    mixed_samples: list[WorldSample], mixed_analyses: list[VideoAnalysis]
) -> None:
    found = _accuracy([analysis.found for analysis in mixed_analyses])
    colour = _accuracy([a.colour == s.colour for s, a in zip(mixed_samples, mixed_analyses, strict=True)])
    shape = _accuracy([a.shape == s.shape for s, a in zip(mixed_samples, mixed_analyses, strict=True)])
    print(
        f"\nmixed world clips (n={len(mixed_samples)}): "
        f"found {found:.3f} colour {colour:.3f} shape {shape:.3f}"
    )
    assert found == 1.0
    assert colour >= COLOUR_FLOOR, f"colour accuracy {colour:.3f}"
    assert shape >= SHAPE_FLOOR, f"shape accuracy {shape:.3f}"
    for name in ("circle", "square", "triangle", "star"):  # no shape is sacrificed to the others
        per_shape = _accuracy(
            [a.shape == name for s, a in zip(mixed_samples, mixed_analyses, strict=True) if s.shape == name]
        )
        assert per_shape >= SHAPE_FLOOR, f"{name}: {per_shape:.3f}"


def test_motion_summary_matches_the_truth(
    mixed_samples: list[WorldSample], mixed_analyses: list[VideoAnalysis]
) -> None:
    pairs = list(zip(mixed_samples, mixed_analyses, strict=True))
    scores = {
        "direction": _accuracy(
            [a.direction == s.truth.screen_direction for s, a in pairs if s.truth.screen_direction]
        ),
        "path": _accuracy([a.path_kind == s.truth.path_kind for s, a in pairs]),
        "rotation": _accuracy([a.rotation == s.truth.rotation for s, a in pairs if s.truth.rotation]),
        "area_trend": _accuracy([a.area_trend == s.truth.area_trend for s, a in pairs]),
        "camera": _accuracy([_camera_hit(s, a) for s, a in pairs]),
    }
    print("\nmotion summary accuracy: " + " ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    for name, value in scores.items():
        assert value >= MOTION_FLOOR, f"{name} accuracy {value:.3f}"


def test_translation_direction_in_all_directions_speeds_and_backgrounds(world_spec: WorldSpec) -> None:
    hits, lines = [], []
    for index, (direction, speed, background) in enumerate(
        (d, s, b) for d in DIRECTION_NAMES for s in world_spec.motion.speeds for b in world_spec.backgrounds
    ):
        sample = render_sample(
            world_spec,
            "translate",
            params={"direction": direction, "speed": speed},
            background=background,
            seed=index,
        )
        analysis = analyse_video(sample.frames, world_spec)
        hits.append(analysis.direction == direction)
        lines.append(analysis.path_kind == "line")
        # Speed in the analyser's terms: distance over the clip as a share of the side.
        assert analysis.travel == pytest.approx(world_spec.motion.speeds[speed], rel=0.1), sample.caption
    accuracy = _accuracy(hits)
    print(f"\ntranslation direction accuracy (n={len(hits)}): {accuracy:.3f}")
    assert accuracy >= DIRECTION_FLOOR, f"direction accuracy {accuracy:.3f}"
    assert _accuracy(lines) >= DIRECTION_FLOOR


def test_camera_pans_are_read_as_the_object_moving_on_screen(world_spec: WorldSpec) -> None:
    for index, (direction, speed) in enumerate(
        (d, s) for d in DIRECTION_NAMES for s in world_spec.motion.speeds
    ):
        sample = render_sample(
            world_spec, "pan", params={"direction": direction, "speed": speed}, seed=100 + index
        )
        analysis = analyse_video(sample.frames, world_spec)
        on_screen = opposite_direction(direction)  # "camera panning left": the scene slides right
        assert analysis.direction == on_screen, sample.caption
        assert analysis.camera == "pan" and analysis.background_direction == on_screen, sample.caption


def test_time_reversal_reverses_the_reading(
    mixed_samples: list[WorldSample], mixed_analyses: list[VideoAnalysis], world_spec: WorldSpec
) -> None:
    """Metamorphic check without ground truth: played backwards, every motion turns around."""
    for sample, forward in list(zip(mixed_samples, mixed_analyses, strict=True))[:40]:
        backward = analyse_video(np.ascontiguousarray(sample.frames[::-1]), world_spec)
        assert (backward.colour, backward.shape) == (forward.colour, forward.shape)
        if forward.direction not in (None, STATIC) and forward.path_kind != "curve":
            assert backward.direction == opposite_direction(forward.direction), sample.caption
        assert backward.area_trend == REVERSED[forward.area_trend], sample.caption
        if forward.rotation:
            assert backward.rotation == REVERSED[forward.rotation], sample.caption
        if forward.camera in ("zoom_in", "zoom_out"):
            assert backward.camera == REVERSED[forward.camera], sample.caption


def _degrade(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a small generator's output may look like: soft, grainy and washed out."""
    soft = np.stack([cv2.GaussianBlur(frame, (0, 0), DEGRADE_BLUR_SIGMA) for frame in frames]).astype(
        np.float64
    )
    grey = soft.mean(axis=-1, keepdims=True)
    washed = grey + DEGRADE_SATURATION * (soft - grey)
    return np.clip(washed + rng.normal(0.0, DEGRADE_NOISE_SIGMA, soft.shape), 0, 255).astype(np.uint8)


def test_soft_noisy_washed_out_clips_are_still_read(
    mixed_samples: list[WorldSample], world_spec: WorldSpec
) -> None:
    """Generated videos will not be crisp: blur, grain and low saturation must not break the reading
    (measured on 120 clips: colour, shape, direction and camera all 1.00)."""
    rng = np.random.default_rng(0)
    pairs = [
        (sample, analyse_video(_degrade(sample.frames, rng), world_spec)) for sample in mixed_samples[:40]
    ]
    colour = _accuracy([a.colour == s.colour for s, a in pairs])
    shape = _accuracy([a.shape == s.shape for s, a in pairs])
    direction = _accuracy(
        [a.direction == s.truth.screen_direction for s, a in pairs if s.truth.screen_direction]
    )
    camera = _accuracy([_camera_hit(s, a) for s, a in pairs])
    print(
        f"\ndegraded clips: colour {colour:.3f} shape {shape:.3f} "
        f"direction {direction:.3f} camera {camera:.3f}"
    )
    assert colour >= COLOUR_FLOOR and shape >= SHAPE_FLOOR and direction >= DIRECTION_FLOOR
    assert camera >= MOTION_FLOOR
    # Grain alone on an object-free background is still nothing.
    background = np.rint(make_background("plain", (64, 64), world_spec.background, rng)).astype(np.uint8)
    assert not analyse_video(_degrade(np.broadcast_to(background, (8, 64, 64, 3)), rng), world_spec).found


def _assert_not_found(analysis: VideoAnalysis, num_frames: int) -> None:
    assert not analysis.found
    assert analysis.shape is None
    assert analysis.centroids.shape == (num_frames, 2) and analysis.areas.shape == (num_frames,)


def test_empty_and_noise_clips_are_not_found(world_spec: WorldSpec) -> None:
    rng = np.random.default_rng(0)
    shape = (8, 64, 64, 3)
    blurred = np.stack(
        [cv2.GaussianBlur(frame, (0, 0), 1.0) for frame in rng.integers(0, 256, shape, dtype=np.uint8)]
    )
    background = np.rint(make_background("texture", (64, 64), world_spec.background, rng)).astype(np.uint8)
    clips = {
        "black": np.zeros(shape, dtype=np.uint8),
        "grey": np.full(shape, 128, dtype=np.uint8),
        "uniform noise": rng.integers(0, 256, shape, dtype=np.uint8),
        "blurred noise": blurred,
        "world background, no object": np.broadcast_to(background, shape).copy(),
        "single frame of noise": rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8),
    }
    for name, clip in clips.items():
        analysis = analyse_video(clip, world_spec)
        assert not analysis.found, name
        _assert_not_found(analysis, len(clip))


def test_an_object_in_too_few_frames_is_not_found(world_spec: WorldSpec) -> None:
    sample = render_sample(world_spec, "translate", background="plain", seed=3)
    clip = np.broadcast_to(sample.frames[0], sample.frames.shape).copy()
    empty = np.rint(
        make_background("plain", (64, 64), world_spec.background, np.random.default_rng(1))
    ).astype(np.uint8)
    clip[2:] = empty  # the object shows in 2 of 8 frames
    analysis = analyse_video(clip, world_spec)
    _assert_not_found(analysis, 8)
    assert analysis.present.sum() == 2 and analysis.colour == sample.colour


def test_bad_input_raises_a_clear_error(world_spec: WorldSpec) -> None:
    for clip in (
        np.zeros((8, 64, 64, 3), dtype=np.float32),
        np.zeros((64, 64, 3), dtype=np.uint8),
        np.zeros((0, 64, 64, 3), dtype=np.uint8),
    ):
        with pytest.raises(ValueError, match=r"uint8 \(F, H, W, 3\)"):
            analyse_video(clip, world_spec)


def test_small_long_clips_and_extra_colours_are_read_too() -> None:
    worlds = {
        "32x32, 16 frames": WorldSpec(num_frames=16, height=32, width=32),
        "nine colours": WorldSpec(colours=tuple(PALETTE)),
    }
    for name, spec in worlds.items():
        samples = sample_world(spec, 40, split="all", seed=8)
        analyses = [analyse_video(sample.frames, spec) for sample in samples]
        pairs = list(zip(samples, analyses, strict=True))
        colour = _accuracy([a.colour == s.colour for s, a in pairs])
        shape = _accuracy([a.shape == s.shape for s, a in pairs])
        direction = _accuracy(
            [a.direction == s.truth.screen_direction for s, a in pairs if s.truth.screen_direction]
        )
        print(f"\n{name}: colour {colour:.3f} shape {shape:.3f} direction {direction:.3f}")
        assert (
            colour >= COLOUR_FLOOR - 0.03
            and shape >= SHAPE_FLOOR - 0.05
            and direction >= DIRECTION_FLOOR - 0.05
        ), name


def test_segmentation_labels_palette_colours_only(world_spec: WorldSpec) -> None:
    colours = ("red", "green", "white")
    frame = np.full((1, 4, 4, 3), 120, dtype=np.uint8)
    frame[0, 0, 0] = (250, 10, 10)  # red
    frame[0, 0, 1] = (10, 240, 30)  # green
    frame[0, 0, 2] = (250, 250, 250)  # white
    frame[0, 0, 3] = (10, 10, 250)  # blue: not in this palette
    frame[0, 1, 0] = (140, 120, 120)  # tinted grey background
    labels = segment_colours(frame, colours, AnalyserConfig())
    assert labels[0, 0].tolist() == [0, 1, 2, -1]
    assert (labels[0, 1:] == -1).all()
