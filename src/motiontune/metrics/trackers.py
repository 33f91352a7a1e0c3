"""Point trackers used by the motion fidelity metric (design sec. 5, seed 002 eq. 6).

A tracker turns a clip into point tracks. The default one needs no weights: a grid of points
on frame 0 followed with OpenCV's pyramidal Lucas-Kanade optical flow. Heavier trackers
(CoTracker through ``torch.hub`` from a local clone) register themselves in ``TRACKERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np


@dataclass(frozen=True)
class Tracks:
    """Point tracks over a whole clip.

    Only kept tracks are stored: a tracker drops lost tracks instead of zero-filling them.

    Attributes:
        positions: (P, F, 2) float32, x, y in pixels of the tracked video.
        visible: (P, F) bool, whether the point is visible in each frame (always True for
            trackers that drop tracks as soon as they are lost).
        frame_size: (H, W) of the tracked video, so clips of different size can be compared.
    """

    positions: np.ndarray
    visible: np.ndarray
    frame_size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.positions.ndim != 3 or self.positions.shape[-1] != 2:
            raise ValueError(f"positions must be (P, F, 2), got {self.positions.shape}")
        if self.visible.shape != self.positions.shape[:2]:
            raise ValueError(
                f"visible must be (P, F) = {self.positions.shape[:2]}, got {self.visible.shape}"
            )
        if len(self.frame_size) != 2 or min(self.frame_size) <= 0:
            raise ValueError(f"frame_size must be a positive (H, W), got {self.frame_size}")

    @property
    def num_tracks(self) -> int:
        """Number of kept tracks P."""
        return int(self.positions.shape[0])

    @property
    def num_frames(self) -> int:
        """Number of frames F the tracks span."""
        return int(self.positions.shape[1])


@runtime_checkable
class Tracker(Protocol):
    """Anything that turns a clip into point tracks."""

    def track(self, frames: np.ndarray) -> Tracks:
        """Track points through ``frames`` (F, H, W, 3) uint8 RGB; return the kept tracks."""
        ...


def _check_frames(frames: np.ndarray) -> None:
    """Reject anything that is not a non-empty (F, H, W, 3) uint8 RGB clip."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 (F, H, W, 3) RGB, got {frames.dtype} {frames.shape}"
        )
    if frames.shape[0] == 0:
        raise ValueError("frames must contain at least one frame")


class OpenCVLucasKanadeTracker:
    """Grid of points on frame 0 tracked frame to frame with pyramidal Lucas-Kanade.

    Each step t -> t+1 is checked forward-backward: the point is tracked to t+1 and back to
    t. A point is lost at that step if either direction reports status 0, if the round trip
    misses its start by more than ``fb_threshold`` px, or if it leaves the frame. "Leaving"
    means coming closer than ``border_margin`` px to the border (by default half the window):
    once the window sticks out, OpenCV fills it by border replication and the flow is biased
    consistently in both directions, so the forward-backward check cannot catch it (we
    measured up to 0.8 px error on an exact 2 px translation). Set ``border_margin=0`` for
    the literal frame boundary. Seeds start one pixel further in (``margin``) so that
    sub-pixel jitter of a still point on the outer grid line does not count as leaving.
    A lost point drops its whole track: the metric compares displacement sequences time step
    by time step, so every kept track must span the whole clip.
    """

    def __init__(
        self,
        grid_size: int = 16,
        win_size: int = 15,
        pyramid_levels: int = 3,
        max_iterations: int = 30,
        epsilon: float = 0.01,
        fb_threshold: float = 1.0,
        margin: int | None = None,
        border_margin: float | None = None,
    ) -> None:
        """Configure the tracker.

        Args:
            grid_size: points per side of the square seed grid (grid_size**2 seeds).
            win_size: side of the Lucas-Kanade search window in pixels.
            pyramid_levels: highest pyramid level (0 = no pyramid), OpenCV's ``maxLevel``.
            max_iterations: iteration cap of the per-level solver (termination criterion).
            epsilon: minimum update in pixels before the solver stops (termination criterion).
            fb_threshold: largest accepted forward-backward round-trip error in pixels.
            margin: distance in pixels from the outer seeds to the frame border; None uses
                ``win_size // 2 + 1``, one pixel of slack inside ``border_margin``.
            border_margin: a tracked point closer than this many pixels to the border has
                left the frame; None uses ``win_size // 2`` so its window stays inside.
        """
        if grid_size < 1:
            raise ValueError(f"grid_size must be >= 1, got {grid_size}")
        if win_size < 3:
            raise ValueError(f"win_size must be >= 3, got {win_size}")
        if pyramid_levels < 0:
            raise ValueError(f"pyramid_levels must be >= 0, got {pyramid_levels}")
        if fb_threshold < 0:
            raise ValueError(f"fb_threshold must be >= 0, got {fb_threshold}")
        self.grid_size = grid_size
        self.win_size = win_size
        self.pyramid_levels = pyramid_levels
        self.max_iterations = max_iterations
        self.epsilon = epsilon
        self.fb_threshold = fb_threshold
        self.margin = win_size // 2 + 1 if margin is None else margin
        self.border_margin = float(win_size // 2 if border_margin is None else border_margin)
        if self.margin < 0 or self.border_margin < 0:
            raise ValueError(
                f"margins must be >= 0, got margin={self.margin}, "
                f"border_margin={self.border_margin}"
            )

    def grid_points(self, height: int, width: int) -> np.ndarray:
        """Seed points (grid_size**2, 2) float32 x, y, row-major, ``margin`` px inside the frame."""
        if 2 * self.margin >= min(height, width):
            raise ValueError(
                f"margin {self.margin} px leaves no room for a grid in a {height}x{width} frame"
            )
        xs = np.linspace(self.margin, width - 1 - self.margin, self.grid_size, dtype=np.float32)
        ys = np.linspace(self.margin, height - 1 - self.margin, self.grid_size, dtype=np.float32)
        grid_x, grid_y = np.meshgrid(xs, ys)
        return np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1).astype(np.float32)

    def _flow(
        self, from_grey: np.ndarray, to_grey: np.ndarray, points: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Track points (N, 2) from one grey frame to the next; return (N, 2) and (N,) status."""
        criteria = (
            cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT,
            self.max_iterations,
            self.epsilon,
        )
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            from_grey,
            to_grey,
            points.reshape(-1, 1, 2),
            None,
            winSize=(self.win_size, self.win_size),
            maxLevel=self.pyramid_levels,
            criteria=criteria,
        )
        return moved.reshape(-1, 2), status.reshape(-1).astype(bool)

    def track(self, frames: np.ndarray) -> Tracks:
        """Track the seed grid through ``frames`` (F, H, W, 3) uint8 RGB.

        Returns:
            Tracks with positions (P, F, 2), P <= grid_size**2 (lost tracks dropped).
        """
        _check_frames(frames)
        num_frames, height, width = frames.shape[:3]
        seeds = self.grid_points(height, width)
        positions = np.zeros((seeds.shape[0], num_frames, 2), dtype=np.float32)
        positions[:, 0] = seeds
        alive = np.ones(seeds.shape[0], dtype=bool)
        # Lucas-Kanade works on intensity; colour adds nothing for a brightness-constancy model.
        grey = [cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in frames]

        for step in range(num_frames - 1):
            alive_ids = np.flatnonzero(alive)
            if alive_ids.size == 0:
                break
            start = np.ascontiguousarray(positions[alive_ids, step])
            forward, forward_ok = self._flow(grey[step], grey[step + 1], start)
            backward, backward_ok = self._flow(grey[step + 1], grey[step], forward)
            round_trip_error = np.linalg.norm(backward - start, axis=-1)
            inside = (
                (forward[:, 0] >= self.border_margin)
                & (forward[:, 0] <= width - 1 - self.border_margin)
                & (forward[:, 1] >= self.border_margin)
                & (forward[:, 1] <= height - 1 - self.border_margin)
            )
            kept = (
                forward_ok
                & backward_ok
                & np.isfinite(forward).all(axis=-1)
                & (round_trip_error <= self.fb_threshold)
                & inside
            )
            positions[alive_ids, step + 1] = forward
            alive[alive_ids[~kept]] = False

        kept_positions = positions[alive]
        return Tracks(
            positions=kept_positions,
            visible=np.ones(kept_positions.shape[:2], dtype=bool),
            frame_size=(int(height), int(width)),
        )


# Open registry: CoTracker (torch.hub from a local clone) is added here when it lands.
TRACKERS: dict[str, Callable[..., Tracker]] = {
    "opencv_lk": OpenCVLucasKanadeTracker,
}


def build_tracker(name: str, **kwargs: object) -> Tracker:
    """Build the tracker registered as ``name`` with constructor ``kwargs``."""
    try:
        factory = TRACKERS[name]
    except KeyError:
        known = ", ".join(sorted(TRACKERS))
        raise ValueError(f"unknown tracker {name!r}; known trackers: {known}") from None
    return factory(**kwargs)
