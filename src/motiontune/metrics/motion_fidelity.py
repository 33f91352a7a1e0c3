"""Motion Fidelity Score (DMT, Yatim et al. 2023; seed 002 eq. 6; design sec. 5).

Point tracks are computed on the source and on the output video. Two modes:

``moving`` (default): seed 002 eq. 6 over the tracks that move. A track is static when it never
gets ``static_threshold`` source-frame pixels away from where it started. Static tracks carry no
information about motion (a still floor matches a still floor whatever the object does, and a
frozen video is all still floor), so they are left out on both sides and only counted (``num_source_static``, ``num_output_static``). Every moving pair is
compared by the normalised cross-correlation of their displacement sequences, and each moving
track is scored by its best moving match on the other side:

    score = 1/2 * ( 1/|O| sum_{moving output o} max_{moving source s} corr(s, o)
                  + 1/|S| sum_{moving source s} max_{moving output o} corr(s, o) )

A side without moving tracks scores 0 (nothing of the source's motion is there), so a frozen
output scores 0 against a moving source, and motion the opposite way scores -1. If nothing
moves on either side the score is 0.0 with a warning (never NaN).

Seed 002 eq. 6 writes the plain sum of the two terms (range [-2, 2]) yet reports values in 0-1
(e.g. 0.9552), so we halve it: ``score`` lies in [-1, 1] and is on the paper's scale.
``corr`` is the cosine similarity of the flattened displacement sequences: it stays defined
when a point pauses and weights frames by how much motion they carry.

``dmt``: exactly the formula of DMT's released ``motion_fidelity_score.py`` (one direction,
output -> source): every per-frame displacement is divided by its norm (a zero displacement
gives 0/0 = NaN, as in their code), the similarity of output track i and source track j is the
mean over frames of the per-frame cosines, 1 is subtracted where i and j started from the same
grid seed (their ``similarity_matrix - torch.eye(N)``; with our seed ids this also works when
a tracker dropped points), and the score is the mean over output tracks of the row maximum (a
NaN anywhere in a row makes that row's maximum NaN, as ``torch.max`` does). All tracks count,
static or not. ``output_to_source`` is that score; ``source_to_output`` is the same formula the
other way round (not part of DMT's score, for information).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motiontune.metrics.trackers import Tracker, Tracks


# Modes of the score (module docstring): seed 002 eq. 6 over moving tracks, or DMT's released formula.
MODES = ("moving", "dmt")


@dataclass(frozen=True)
class MotionFidelity:
    """Result of comparing the motion of two videos.

    Attributes:
        score: the mode's score: ``moving``, symmetric, in [-1, 1]; ``dmt``, DMT's one-directional
            score in [-2, 1] (NaN where their formula is undefined).
        output_to_source: mean over (moving, for ``moving``) output tracks of the best source match.
        source_to_output: mean over (moving) source tracks of the best output match.
        num_source_tracks: tracks kept on the source video.
        num_output_tracks: tracks kept on the output video.
        num_source_static: of those, source tracks below the static threshold.
        num_output_static: of those, output tracks below the static threshold.
        mode: ``moving`` or ``dmt``.
        warning: why the score is 0.0 or NaN (nothing to compare), else None.
    """

    score: float
    output_to_source: float
    source_to_output: float
    num_source_tracks: int
    num_output_tracks: int
    num_source_static: int = 0
    num_output_static: int = 0
    mode: str = "moving"
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


def static_tracks(disp: np.ndarray, static_threshold: float) -> np.ndarray:
    """(N,) bool: tracks that never get ``static_threshold`` px away from where they started.

    The track's extent max_t |p_t - p_0| (from displacements (N, T, 2)) does not depend on the
    frame count, unlike the norm of the displacement sequence (the same travel over twice the
    frames has a norm 1/sqrt(2) as large), and a path that comes back (a circle) still moves.
    A track with no displacement at all is static whatever the threshold.
    """
    offsets = np.cumsum(disp, axis=1)
    extent = np.linalg.norm(offsets, axis=-1).max(axis=1) if disp.shape[1] else np.zeros(len(disp))
    return (extent < static_threshold) | (extent == 0)


def dmt_similarity(output_disp: np.ndarray, source_disp: np.ndarray) -> np.ndarray:
    """DMT's ``get_similarity_matrix(edit, original)``: (N, M) mean over frames of per-frame cosines.

    Each displacement (N, T, 2) / (M, T, 2) is divided by its own norm, so a zero displacement
    becomes NaN (0/0) and every entry of its track's row (or column) is NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        unit_output = output_disp / np.linalg.norm(output_disp, axis=-1, keepdims=True)
        unit_source = source_disp / np.linalg.norm(source_disp, axis=-1, keepdims=True)
        return np.einsum("ntc,mtc->nmt", unit_output, unit_source).mean(axis=-1)


def dmt_score(similarity: np.ndarray, row_ids: np.ndarray, column_ids: np.ndarray) -> float:
    """DMT's ``get_score``: mean over rows of max_j (similarity[i, j] - [same seed]), NaN propagating.

    DMT subtracts ``torch.eye(N)``: entry (i, i) pairs tracks from the same grid seed when no
    point was dropped; ``row_ids`` / ``column_ids`` give each track's seed so the same entries
    are hit when some were.
    """
    same_seed = row_ids[:, None] == column_ids[None, :]
    # np.max, like torch.max, returns NaN for a row holding a NaN.
    return float(np.max(similarity - same_seed, axis=1).mean())


def _result(
    mode: str, num_source: int, num_output: int, static: tuple[int, int], warning: str | None,
    score: float = 0.0, output_to_source: float = 0.0, source_to_output: float = 0.0,
) -> MotionFidelity:
    return MotionFidelity(
        score=score, output_to_source=output_to_source, source_to_output=source_to_output,
        num_source_tracks=num_source, num_output_tracks=num_output,
        num_source_static=static[0], num_output_static=static[1], mode=mode, warning=warning,
    )


def _moving_score(
    source_disp: np.ndarray, output_disp: np.ndarray, static_threshold: float
) -> MotionFidelity:
    source_static = static_tracks(source_disp, static_threshold)
    output_static = static_tracks(output_disp, static_threshold)
    counts = (len(source_disp), len(output_disp))
    static = (int(source_static.sum()), int(output_static.sum()))
    still_sides = [
        name
        for name, still in (("source", source_static), ("output", output_static))
        if still.all()
    ]
    if still_sides:
        return _result(
            "moving", *counts, static,
            f"no track moves on the {' and '.join(still_sides)} video (static below "
            f"{static_threshold} px); motion fidelity set to 0.0",
        )
    # Only moving tracks (nonzero displacements) remain: with a zero threshold track_correlation's
    # static rules never apply and it gives the plain cosines.
    correlation = track_correlation(source_disp[~source_static], output_disp[~output_static], 0.0)
    output_to_source = float(correlation.max(axis=0).mean())
    source_to_output = float(correlation.max(axis=1).mean())
    return _result(
        "moving", *counts, static, None, 0.5 * (output_to_source + source_to_output),
        output_to_source, source_to_output,
    )


def _dmt_score(
    source_disp: np.ndarray, output_disp: np.ndarray, source_ids: np.ndarray, output_ids: np.ndarray,
    static_threshold: float,
) -> MotionFidelity:
    output_to_source = dmt_score(dmt_similarity(output_disp, source_disp), output_ids, source_ids)
    source_to_output = dmt_score(dmt_similarity(source_disp, output_disp), source_ids, output_ids)
    static = (
        int(static_tracks(source_disp, static_threshold).sum()),
        int(static_tracks(output_disp, static_threshold).sum()),
    )
    warning = None
    if not np.isfinite(output_to_source):
        zero_steps = [
            f"{int((np.linalg.norm(disp, axis=-1) == 0).any(axis=1).sum())} {name}"
            for name, disp in (("output", output_disp), ("source", source_disp))
        ]
        warning = (
            f"DMT's formula is NaN here, as in their code: {' and '.join(zero_steps)} tracks have a "
            "step with zero displacement (no direction); a tracker with sub-pixel noise (cotracker) avoids it"
        )
    return _result(
        "dmt", len(source_disp), len(output_disp), static, warning,
        output_to_source, output_to_source, source_to_output,
    )


def motion_fidelity(
    source_tracks: Tracks,
    output_tracks: Tracks,
    static_threshold: float,
    mode: str = "moving",
) -> MotionFidelity:
    """Motion Fidelity Score between source and output tracks (module docstring: ``moving`` or ``dmt``).

    Videos of different size: positions are normalised by each video's own width and
    height and expressed in source-frame pixels, so the same relative motion compares equal.
    Videos of different length: the track set with more frames is linearly resampled in
    time to the shorter frame count (both clips are taken to span the same duration). On
    clips of the same size and length (DMT's setting) both steps change nothing.
    Visibility flags are not used: like DMT, every kept track counts for its whole length.

    Args:
        source_tracks: tracks on the source video, positions (S, F_s, 2).
        output_tracks: tracks on the output video, positions (O, F_o, 2).
        static_threshold: a track that never gets this many source-frame pixels away from
            its start counts as static (``evaluate.static_threshold``).
        mode: ``moving`` (default) or ``dmt``.

    Returns:
        MotionFidelity; if either side has no track or fewer than 2 frames, or (``moving``)
        nothing moves on a side, all scores are 0.0 and ``warning`` says why.
    """
    if mode not in MODES:
        raise ValueError(f"motion fidelity mode '{mode}' is not one of {list(MODES)}")
    if static_threshold < 0:
        raise ValueError(f"static_threshold must be >= 0, got {static_threshold}")
    num_source = source_tracks.num_tracks
    num_output = output_tracks.num_tracks
    empty_sides = [
        name
        for name, count in (("source", num_source), ("output", num_output))
        if count == 0
    ]
    if empty_sides:
        return _result(
            mode, num_source, num_output, (0, 0),
            f"no track survived on the {' and '.join(empty_sides)} video; score set to 0.0",
        )
    num_frames = min(source_tracks.num_frames, output_tracks.num_frames)
    if num_frames < 2:
        return _result(
            mode, num_source, num_output, (0, 0),
            "a video has fewer than 2 frames, so there is no motion to compare; score set to 0.0",
        )

    source_disp = displacements(resample_positions(
        _in_source_pixels(source_tracks, source_tracks.frame_size), num_frames
    ))
    output_disp = displacements(resample_positions(
        _in_source_pixels(output_tracks, source_tracks.frame_size), num_frames
    ))
    if mode == "dmt":
        return _dmt_score(source_disp, output_disp, source_tracks.ids, output_tracks.ids, static_threshold)
    return _moving_score(source_disp, output_disp, static_threshold)


def motion_fidelity_of_videos(
    source_frames: np.ndarray,
    output_frames: np.ndarray,
    tracker: Tracker,
    static_threshold: float,
    mode: str = "moving",
    mask: np.ndarray | None = None,
) -> MotionFidelity:
    """Track both clips, (F, H, W, 3) uint8 RGB each, and score them with ``motion_fidelity``.

    ``mask``: (h, w) bool region of frame 0 where both clips are seeded (DMT's ``use_mask``: the
    box of the source's first-frame foreground, ``trackers.foreground_box``); None: everywhere.
    """
    return motion_fidelity(
        tracker.track(source_frames, mask=mask),
        tracker.track(output_frames, mask=mask),
        static_threshold=static_threshold,
        mode=mode,
    )
