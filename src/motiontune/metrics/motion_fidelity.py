"""Motion Fidelity Score (DMT, Yatim et al. 2023; seed 002 eq. 6; design sec. 5).

Point tracks are computed on the source and on the output video; every pair of tracks is
compared by the normalised cross-correlation of their displacement sequences, and each track
is scored by its best match on the other side:

    score = 1/2 * ( 1/m sum_{output track o} max_{source track s} corr(s, o)
                  + 1/n sum_{source track s} max_{output track o} corr(s, o) )

Seed 002 eq. 6 writes the plain sum of the two terms (range [-2, 2]) yet reports values
in 0-1 (e.g. 0.9552), so we halve it: ``score`` lies in [-1, 1] and is on the paper's scale.
DMT's original metric is the first term alone, exposed as ``output_to_source``.

Note on ``corr``: we use the normalisation of the whole sequence (cosine similarity of the
flattened displacement sequences). DMT's released code instead normalises each per-frame
displacement vector and averages the per-frame cosines, which is undefined (NaN) for
frames where a point does not move; the sequence form stays defined and weights frames by
how much motion they carry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motiontune.metrics.trackers import Tracker, Tracks


@dataclass(frozen=True)
class MotionFidelity:
    """Result of comparing the motion of two videos.

    Attributes:
        score: symmetric score in [-1, 1], mean of the two directional terms.
        output_to_source: mean over output tracks of the best source correlation (DMT).
        source_to_output: mean over source tracks of the best output correlation.
        num_source_tracks: tracks kept on the source video.
        num_output_tracks: tracks kept on the output video.
        warning: why the score could not be computed (then all scores are 0.0), else None.
    """

    score: float
    output_to_source: float
    source_to_output: float
    num_source_tracks: int
    num_output_tracks: int
    warning: str | None = None


def displacements(positions: np.ndarray) -> np.ndarray:
    """Per-step motion of each track: positions (P, F, 2) -> displacements (P, F-1, 2)."""
    if positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError(f"positions must be (P, F, 2), got {positions.shape}")
    return np.diff(positions, axis=1)


def resample_positions(positions: np.ndarray, num_frames: int) -> np.ndarray:
    """Linearly interpolate positions (P, F, 2) in time to (P, num_frames, 2).

    Both clips are assumed to span the same time interval, so frame i of F sits at clip
    time i / (F - 1) and the new frames are spread evenly over the same interval.
    """
    if positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError(f"positions must be (P, F, 2), got {positions.shape}")
    num_tracks, old_frames, _ = positions.shape
    if num_frames < 1 or old_frames < 1:
        raise ValueError("cannot resample to or from zero frames")
    if num_frames == old_frames:
        return positions.astype(np.float64, copy=True)
    if old_frames == 1:
        return np.repeat(positions.astype(np.float64), num_frames, axis=1)
    old_times = np.linspace(0.0, 1.0, old_frames)
    new_times = np.linspace(0.0, 1.0, num_frames)
    # Interpolation weights are shared by every track and coordinate: find them once.
    right = np.clip(np.searchsorted(old_times, new_times, side="right"), 1, old_frames - 1)
    left = right - 1
    weight = (new_times - old_times[left]) / (old_times[right] - old_times[left])
    weight = weight[None, :, None]
    source = positions.astype(np.float64)
    resampled = (1.0 - weight) * source[:, left] + weight * source[:, right]
    assert resampled.shape == (num_tracks, num_frames, 2)
    return resampled


def track_correlation(
    source_disp: np.ndarray, output_disp: np.ndarray, static_threshold: float
) -> np.ndarray:
    """Normalised cross-correlation between every source and output displacement sequence.

    corr(a, b) = sum_t <a_t, b_t> / (||a|| ||b||) with ||a|| = sqrt(sum_t |a_t|^2), i.e. the
    cosine similarity of the flattened (T * 2,) sequences, in [-1, 1]. A track with
    ||a|| < static_threshold (or exactly zero) is static: static vs static scores 1.0 (both
    agree nothing moves), static vs moving scores 0.0; the result is never NaN.

    Args:
        source_disp: (S, T, 2) source displacements.
        output_disp: (O, T, 2) output displacements, same T and units as the source.
        static_threshold: norm below which a track counts as static, in the units of the input.

    Returns:
        (S, O) float64 correlation matrix.
    """
    for name, disp in (("source_disp", source_disp), ("output_disp", output_disp)):
        if disp.ndim != 3 or disp.shape[-1] != 2:
            raise ValueError(f"{name} must be (N, T, 2), got {disp.shape}")
        if not np.all(np.isfinite(disp)):
            raise ValueError(f"{name} contains NaN or inf")
    if source_disp.shape[1] != output_disp.shape[1]:
        raise ValueError(
            f"source and output must have the same number of steps, got "
            f"{source_disp.shape[1]} and {output_disp.shape[1]}; resample first"
        )
    if static_threshold < 0:
        raise ValueError(f"static_threshold must be >= 0, got {static_threshold}")

    source_flat = source_disp.reshape(source_disp.shape[0], -1).astype(np.float64)
    output_flat = output_disp.reshape(output_disp.shape[0], -1).astype(np.float64)
    source_norm = np.linalg.norm(source_flat, axis=1)
    output_norm = np.linalg.norm(output_flat, axis=1)
    # "== 0" catches a zero threshold, where "< threshold" alone would let 0/0 through.
    source_static = (source_norm < static_threshold) | (source_norm == 0)
    output_static = (output_norm < static_threshold) | (output_norm == 0)

    # Static norms are replaced by 1 only to keep the division finite; those entries are
    # overwritten by the static rules below.
    safe_source_norm = np.where(source_static, 1.0, source_norm)
    safe_output_norm = np.where(output_static, 1.0, output_norm)
    correlation = (source_flat @ output_flat.T) / np.outer(safe_source_norm, safe_output_norm)
    # Rounding can push the cosine a hair outside [-1, 1].
    correlation = np.clip(correlation, -1.0, 1.0)
    both_static = source_static[:, None] & output_static[None, :]
    one_static = source_static[:, None] ^ output_static[None, :]
    correlation[both_static] = 1.0
    correlation[one_static] = 0.0
    return correlation


def _in_source_pixels(tracks: Tracks, source_frame_size: tuple[int, int]) -> np.ndarray:
    """Positions (P, F, 2) divided by their own (W, H) and multiplied by the source's (W, H).

    This is the normalisation by frame size, expressed in source-frame pixels so that the
    static threshold keeps its meaning (pixels of the source frame) on both videos.
    """
    height, width = tracks.frame_size
    source_height, source_width = source_frame_size
    scale = np.array([source_width / width, source_height / height], dtype=np.float64)
    return tracks.positions.astype(np.float64) * scale


def _empty_result(num_source: int, num_output: int, warning: str) -> MotionFidelity:
    """A well-defined 0.0 result for inputs the score cannot be computed on."""
    return MotionFidelity(
        score=0.0,
        output_to_source=0.0,
        source_to_output=0.0,
        num_source_tracks=num_source,
        num_output_tracks=num_output,
        warning=warning,
    )


def motion_fidelity(
    source_tracks: Tracks,
    output_tracks: Tracks,
    static_threshold: float = 0.5,
) -> MotionFidelity:
    """Motion Fidelity Score between source and output tracks (seed 002 eq. 6, halved).

    Videos of different size: positions are normalised by each video's own width and
    height and expressed in source-frame pixels, so the same relative motion compares equal.
    Videos of different length: the track set with more frames is linearly resampled in
    time to the shorter frame count (both clips are taken to span the same duration).
    Visibility flags are not used: like DMT, every kept track counts for its whole length.

    Args:
        source_tracks: tracks on the source video, positions (S, F_s, 2).
        output_tracks: tracks on the output video, positions (O, F_o, 2).
        static_threshold: a track whose displacement norm sqrt(sum_t |d_t|^2) is below this
            many source-frame pixels counts as static (see ``track_correlation``).

    Returns:
        MotionFidelity; if either side has no track or fewer than 2 frames, all scores are
        0.0 and ``warning`` says why (never NaN).
    """
    num_source = source_tracks.num_tracks
    num_output = output_tracks.num_tracks
    empty_sides = [
        name
        for name, count in (("source", num_source), ("output", num_output))
        if count == 0
    ]
    if empty_sides:
        return _empty_result(
            num_source,
            num_output,
            f"no track survived on the {' and '.join(empty_sides)} video; score set to 0.0",
        )
    num_frames = min(source_tracks.num_frames, output_tracks.num_frames)
    if num_frames < 2:
        return _empty_result(
            num_source,
            num_output,
            "a video has fewer than 2 frames, so there is no motion to compare; score set to 0.0",
        )

    source_positions = resample_positions(
        _in_source_pixels(source_tracks, source_tracks.frame_size), num_frames
    )
    output_positions = resample_positions(
        _in_source_pixels(output_tracks, source_tracks.frame_size), num_frames
    )
    correlation = track_correlation(
        displacements(source_positions), displacements(output_positions), static_threshold
    )
    output_to_source = float(correlation.max(axis=0).mean())
    source_to_output = float(correlation.max(axis=1).mean())
    return MotionFidelity(
        score=0.5 * (output_to_source + source_to_output),
        output_to_source=output_to_source,
        source_to_output=source_to_output,
        num_source_tracks=num_source,
        num_output_tracks=num_output,
    )


def motion_fidelity_of_videos(
    source_frames: np.ndarray,
    output_frames: np.ndarray,
    tracker: Tracker,
    static_threshold: float = 0.5,
) -> MotionFidelity:
    """Track both clips, (F, H, W, 3) uint8 RGB each, and score them with ``motion_fidelity``."""
    return motion_fidelity(
        tracker.track(source_frames),
        tracker.track(output_frames),
        static_threshold=static_threshold,
    )
