"""Scoring analysed clips against their intent and a motion reference."""

from __future__ import annotations

import numpy as np
import pytest

from motiontune.world import (
    Intent,
    Reference,
    ScoringConfig,
    VideoAnalysis,
    WorldSample,
    WorldSpec,
    analyse_video,
    render_sample,
    scale_similarity,
    score_video,
    trajectory_jumps,
    trajectory_similarity,
)

FRAME = (64, 64)


def _line(
    direction: tuple[float, float], frames: int = 8, step: float = 2.0, start: float = 20.0
) -> np.ndarray:
    """Track (frames, 2) moving ``step`` px per frame along ``direction`` from (start, start)."""
    return start + step * np.arange(frames)[:, None] * np.asarray(direction, dtype=np.float64)


def test_trajectory_similarity_is_the_displacement_correlation() -> None:
    right = _line((1, 0))
    assert trajectory_similarity(right, FRAME, right, FRAME)[0] == pytest.approx(1.0)
    assert trajectory_similarity(_line((-1, 0)), FRAME, right, FRAME)[0] == pytest.approx(-1.0)
    assert trajectory_similarity(_line((0, 1)), FRAME, right, FRAME)[0] == pytest.approx(0.0)
    diagonal, ratio = trajectory_similarity(_line((1, 1)), FRAME, right, FRAME)
    assert diagonal == pytest.approx(1 / np.sqrt(2)) and ratio == pytest.approx(np.sqrt(2))
    # Speed does not change the correlation, only the ratio.
    correlation, ratio = trajectory_similarity(_line((1, 0), step=4.0), FRAME, right, FRAME)
    assert correlation == pytest.approx(1.0) and ratio == pytest.approx(2.0)


def test_static_tracks_and_missing_frames_are_handled() -> None:
    still = np.full((8, 2), 30.0)
    assert trajectory_similarity(still, FRAME, still + 5.0, FRAME) == (1.0, None)  # both static
    assert trajectory_similarity(still, FRAME, _line((1, 0)), FRAME) == (0.0, None)  # one static
    gappy = _line((1, 0))
    gappy[[2, 3, 5]] = np.nan  # interpolated back onto the line
    assert trajectory_similarity(gappy, FRAME, _line((1, 0)), FRAME)[0] == pytest.approx(1.0)
    almost_empty = np.full((8, 2), np.nan)
    almost_empty[4] = 10.0
    assert trajectory_similarity(almost_empty, FRAME, _line((1, 0)), FRAME) is None
    with pytest.raises(ValueError, match=r"\(F, 2\)"):
        trajectory_similarity(np.zeros((8, 3)), FRAME, _line((1, 0)), FRAME)


def test_a_jump_is_counted_and_left_out_of_the_jump_free_similarity() -> None:
    """An object moving right 2 px per frame that is redrawn 30 px lower in its last frame (0.47 of a 64 px side,
    above jump_fraction 0.3): the plain similarity is dominated by that one step, the jump-free one is the motion."""
    right = _line((1, 0))
    broken = right.copy()
    broken[-1, 1] += 30.0
    plain = trajectory_similarity(broken, FRAME, right, FRAME)[0]
    # Displacements: six (2, 0) then (2, 30) against seven (2, 0): cosine = 7 * 4 / (sqrt(7 * 4) * sqrt(6 * 4 + 4 + 900)).
    assert plain == pytest.approx(28 / (np.sqrt(28) * np.sqrt(928)))
    share, jump_free = trajectory_jumps(broken, FRAME, right, FRAME)
    assert share == pytest.approx(1 / 7) and jump_free == pytest.approx(1.0)
    # Redrawn the wrong way as well as broken: the jump-free score still says the motion is wrong.
    share, jump_free = trajectory_jumps(broken[::-1] - broken[::-1][0] + broken[0], FRAME, right, FRAME)
    assert share == pytest.approx(1 / 7) and jump_free == pytest.approx(-1.0)
    # A fast but continuous motion (0.25 of the side per frame) has no jump.
    assert trajectory_jumps(_line((1, 0), step=16.0), FRAME, right, FRAME) == (0.0, pytest.approx(1.0))
    # The threshold is the configured one, in the reference's frame: at jump_fraction 0.5 the 30 px step is motion.
    assert trajectory_jumps(broken, FRAME, right, FRAME, ScoringConfig(jump_fraction=0.5)) == (0.0, pytest.approx(plain))
    assert trajectory_jumps(np.full((8, 2), np.nan), FRAME, right, FRAME) is None


def test_different_lengths_and_sizes_compare_the_same_relative_motion() -> None:
    """The same circle at 8 frames / 64 px and 16 frames / 32 px: same motion, same speed."""
    turns = lambda frames: 2 * np.pi * np.linspace(0.0, 0.75, frames)  # noqa: E731
    reference = 32 + 12 * np.stack([np.cos(turns(8)), np.sin(turns(8))], axis=-1)
    small = 16 + 6 * np.stack([np.cos(turns(16)), np.sin(turns(16))], axis=-1)
    correlation, ratio = trajectory_similarity(small, (32, 32), reference, (64, 64))
    # Frames of the two clips sit at different times of the turn: interpolation cuts the arc slightly.
    assert correlation == pytest.approx(1.0, abs=1e-3) and ratio == pytest.approx(1.0, abs=1e-2)
    # Played backwards it is a different motion (not exactly -1: the mirrored arc overlaps itself).
    reverse = trajectory_similarity(small[::-1], (32, 32), reference, (64, 64))[0]
    assert reverse < 0.5


def test_a_clip_scores_perfectly_against_its_own_intent(
    world_spec: WorldSpec, mixed_samples: list[WorldSample], mixed_analyses: list[VideoAnalysis]
) -> None:
    for sample, analysis in list(zip(mixed_samples, mixed_analyses, strict=True))[:60]:
        score = score_video(
            analysis, Intent.from_caption(sample.caption, world_spec), Reference.from_sample(sample)
        )
        assert score.found and score.text_alignment == 1.0 and score.motion_correct, (sample.caption, score)
        assert score.colour_leak is None and score.shape_leak is None  # the reference is the target
        assert score.trajectory_similarity > 0.95, sample.caption  # static vs static scores 1 too
        # No world motion jumps: every clip of every family moves its object continuously (jump_fraction's bound).
        assert score.jump_share == 0.0, sample.caption
        assert score.jump_free_trajectory_similarity == pytest.approx(score.trajectory_similarity), sample.caption


def test_wrong_motion_fails_the_motion_checks(world_spec: WorldSpec) -> None:
    clip = render_sample(
        world_spec,
        "translate",
        params={"direction": "left", "speed": "fast"},
        colour="red",
        shape="star",
        seed=4,
    )
    analysis = analyse_video(clip.frames, world_spec)
    score = score_video(analysis, Intent.from_caption("a red star quickly moving right", world_spec))
    assert score.text_alignment == 1.0 and score.direction_correct is False and not score.motion_correct
    # Moving left on screen because the camera pans right is not "a red star moving left".
    pan = render_sample(
        world_spec, "pan", params={"direction": "right", "speed": "fast"}, colour="red", shape="star", seed=4
    )
    pan_analysis = analyse_video(pan.frames, world_spec)
    object_intent = Intent.from_caption("a red star quickly moving left", world_spec)
    pan_score = score_video(pan_analysis, object_intent)
    assert pan_score.direction_correct and not pan_score.camera_correct and not pan_score.motion_correct
    assert score_video(
        pan_analysis, Intent.from_caption("camera quickly panning right over a red star", world_spec)
    ).motion_correct
    # A circle the wrong way round.
    circle = render_sample(world_spec, "circle_clockwise", seed=4)
    circle_score = score_video(
        analyse_video(circle.frames, world_spec),
        Intent.from_caption(circle.caption.replace("clockwise", "counterclockwise"), world_spec),
    )
    assert circle_score.direction_correct is None and circle_score.rotation_correct is False
    assert not circle_score.motion_correct


def test_appearance_leakage_is_detected(world_spec: WorldSpec) -> None:
    reference = render_sample(
        world_spec,
        "translate",
        params={"direction": "right", "speed": "medium"},
        colour="red",
        shape="circle",
        seed=1,
    )
    intent = Intent("blue", "square", reference.truth)
    leaked = render_sample(
        world_spec,
        "translate",
        params={"direction": "right", "speed": "medium"},
        colour="red",
        shape="circle",
        seed=2,
    )
    clean = render_sample(
        world_spec,
        "translate",
        params={"direction": "right", "speed": "medium"},
        colour="blue",
        shape="square",
        seed=2,
    )
    leaked_score = score_video(
        analyse_video(leaked.frames, world_spec), intent, Reference.from_sample(reference)
    )
    assert leaked_score.colour_leak and leaked_score.shape_leak and leaked_score.text_alignment == 0.0
    assert leaked_score.reference_colour_share == pytest.approx(1.0)
    assert (
        leaked_score.motion_correct and leaked_score.trajectory_similarity > 0.95
    )  # motion transferred fine
    clean_analysis = analyse_video(clean.frames, world_spec)
    clean_score = score_video(
        clean_analysis, intent, Reference.from_analysis(analyse_video(reference.frames, world_spec))
    )
    assert clean_score.colour_leak is False and clean_score.shape_leak is False
    assert clean_score.reference_colour_share == 0.0 and clean_score.text_alignment == 1.0


def test_no_object_scores_zero(world_spec: WorldSpec) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    reference = render_sample(world_spec, "grow", seed=0)
    score = score_video(
        analyse_video(noise, world_spec), Intent.from_sample(reference), Reference.from_sample(reference)
    )
    assert not score.found and not score.motion_correct and score.text_alignment == 0.0
    assert score.trajectory_similarity == 0.0 and score.colour_leak is None
    assert score.jump_free_trajectory_similarity == 0.0 and score.jump_share is None


def test_scoring_config_rejects_unknown_keys() -> None:
    assert ScoringConfig.from_params(None) == ScoringConfig()
    with pytest.raises(ValueError, match=r"world\.scoring\.static: unknown key"):
        ScoringConfig.from_params({"static": 1.0})


def _growth(frames: int = 8, factor: float = 1.8, start: float = 100.0) -> np.ndarray:
    """Areas (frames,) of an object whose size grows geometrically by ``factor`` over the clip."""
    return start * factor ** (2 * np.linspace(0.0, 1.0, frames))


def test_scale_similarity_is_the_log_area_change_correlation() -> None:
    grow = _growth()
    assert scale_similarity(grow, grow) == pytest.approx(1.0)
    assert scale_similarity(grow[::-1], grow) == pytest.approx(-1.0)  # shrinking against growing
    assert scale_similarity(4.0 * grow, grow) == pytest.approx(1.0)  # frame or object size does not matter
    assert scale_similarity(_growth(16), grow) == pytest.approx(1.0, abs=1e-6)  # nor the frame count
    steady = np.full(8, 150.0) * (1 + 0.02 * (-1.0) ** np.arange(8))  # a redrawn outline's jitter
    assert scale_similarity(steady, grow) == 0.0 and scale_similarity(steady, steady[::-1]) == 1.0
    # Grow then shrink back vs steady growth: half agrees, half does not.
    there_and_back = np.concatenate([_growth(5), _growth(5)[::-1][1:]])
    assert abs(scale_similarity(there_and_back, _growth(9))) < 0.2
    gappy = grow.copy()
    gappy[[2, 5]] = np.nan  # interpolated in log area: a geometric growth stays exact
    gappy[3] = 0.0  # absent
    assert scale_similarity(gappy, grow) == pytest.approx(1.0, abs=1e-6)
    almost_empty = np.full(8, np.nan)
    almost_empty[1] = 50.0
    assert scale_similarity(almost_empty, grow) is None


@pytest.mark.parametrize("family", ["grow", "zoom_in"])
def test_scale_similarity_tells_a_scale_motion_from_its_reverse(world_spec: WorldSpec, family: str) -> None:
    """The trajectory alone cannot tell an object growing in place from one shrinking in place; the scale
    similarity can (rendered clips read by the analyser against the ground truth)."""
    sample = render_sample(world_spec, family, colour="red", shape="square", background="texture", seed=3)
    reference = Reference.from_sample(sample)
    intent = Intent.from_sample(sample)
    same = score_video(analyse_video(sample.frames, world_spec), intent, reference)
    reverse = score_video(analyse_video(sample.frames[::-1].copy(), world_spec), intent, reference)
    # Thresholded blob areas snap to whole pixels (a zooming square reads 321, 324, 400 px^2 for 295, 338, 386):
    # the per-frame changes are noisy, their sign is not.
    assert same.scale_similarity > 0.7 and reverse.scale_similarity < -0.7
    if family == "grow":
        assert reverse.trajectory_similarity > 0.9  # the centroid stays put either way
    still = score_video(analyse_video(np.repeat(sample.frames[:1], len(sample.frames), axis=0), world_spec),
                        intent, reference)
    assert still.scale_similarity == 0.0
    # A reference whose object keeps its size has no scale motion to compare.
    translate = render_sample(world_spec, "translate", params={"direction": "right", "speed": "fast"}, seed=3)
    assert score_video(analyse_video(translate.frames, world_spec), Intent.from_sample(translate),
                       Reference.from_sample(translate)).scale_similarity is None
