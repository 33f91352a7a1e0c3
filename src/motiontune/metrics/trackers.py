"""Point trackers used by the motion fidelity metric (design sec. 5, seed 002 eq. 6).

A tracker turns a clip into point tracks. The default one needs no weights: a grid of points
on frame 0 followed with OpenCV's pyramidal Lucas-Kanade optical flow. CoTracker3 is loaded through
``torch.hub`` from a local clone and a checkpoint (``cotracker``). Both are registered in ``TRACKERS``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from motiontune.known_keys import unknown_key_problems

@dataclass(frozen=True)
class Tracks:
    """Point tracks over a whole clip.

    Only kept tracks are stored: a tracker drops lost tracks instead of zero-filling them.

    Attributes:
        positions: (P, F, 2) float32, x, y in pixels of the tracked video.
        visible: (P, F) bool, whether the point is visible in each frame (always True for
            trackers that drop tracks as soon as they are lost).
        frame_size: (H, W) of the tracked video, so clips of different size can be compared.
        query_ids: (P,) int, which seed of the tracker's grid each track started from (the same
            id on two clips of the same size means the same starting point). None means
            ``arange(P)``: track i started from seed i.
    """

    positions: np.ndarray
    visible: np.ndarray
    frame_size: tuple[int, int]
    query_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.positions.ndim != 3 or self.positions.shape[-1] != 2:
            raise ValueError(f"positions must be (P, F, 2), got {self.positions.shape}")
        if self.visible.shape != self.positions.shape[:2]:
            raise ValueError(
                f"visible must be (P, F) = {self.positions.shape[:2]}, got {self.visible.shape}"
            )
        if len(self.frame_size) != 2 or min(self.frame_size) <= 0:
            raise ValueError(f"frame_size must be a positive (H, W), got {self.frame_size}")
        if self.query_ids is not None and (
            self.query_ids.shape != self.positions.shape[:1]
            or not np.issubdtype(self.query_ids.dtype, np.integer)
        ):
            raise ValueError(
                f"query_ids must be (P,) = {self.positions.shape[:1]} integers, got "
                f"{self.query_ids.dtype} {self.query_ids.shape}"
            )

    @property
    def num_tracks(self) -> int:
        """Number of kept tracks P."""
        return int(self.positions.shape[0])

    @property
    def num_frames(self) -> int:
        """Number of frames F the tracks span."""
        return int(self.positions.shape[1])

    @property
    def ids(self) -> np.ndarray:
        """(P,) int64 seed id of each track (``query_ids``, or ``arange(P)`` when not given)."""
        if self.query_ids is None:
            return np.arange(self.num_tracks, dtype=np.int64)
        return self.query_ids.astype(np.int64)


@runtime_checkable
class Tracker(Protocol):
    """Anything that turns a clip into point tracks."""

    def track(self, frames: np.ndarray, mask: np.ndarray | None = None) -> Tracks:
        """Track points through ``frames`` (F, H, W, 3) uint8 RGB; return the kept tracks.

        ``mask``: (h, w) bool foreground of frame 0 (any size; resized to the frame): only seeds
        inside it are tracked (DMT's ``segm_mask``). None seeds the whole grid.
        """
        ...


def _check_frames(frames: np.ndarray) -> None:
    """Reject anything that is not a non-empty (F, H, W, 3) uint8 RGB clip."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 (F, H, W, 3) RGB, got {frames.dtype} {frames.shape}"
        )
    if frames.shape[0] == 0:
        raise ValueError("frames must contain at least one frame")


def mask_at(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width) bool copy of a 2-D mask, resized nearest-neighbour when its size differs."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or min(mask.shape) == 0:
        raise ValueError(f"a mask must be a non-empty (H, W) array, got {mask.shape}")
    if mask.shape != (height, width):
        mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return mask.astype(bool)


def foreground_box(mask: np.ndarray) -> np.ndarray:
    """DMT's rectangle around a foreground mask (``motion_fidelity_score.py``, ``use_mask``).

    DMT fills ``box[min_row:max_row, min_col:max_col]`` of the mask's nonzero pixels: the last
    row and column are outside (Python slices), which we keep so the seeds are theirs.

    Args:
        mask: (H, W) or (H, W, C) array; a pixel is foreground when any channel is nonzero.

    Returns:
        (H, W) bool box mask.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.any(axis=-1)
    if mask.ndim != 2:
        raise ValueError(f"a foreground mask must be (H, W) or (H, W, C), got {mask.shape}")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the foreground mask is empty: no pixel is nonzero")
    box = np.zeros(mask.shape, dtype=bool)
    box[rows.min() : rows.max(), cols.min() : cols.max()] = True
    if not box.any():
        raise ValueError(
            "the foreground mask's box is empty (DMT's box leaves out the last row and column, "
            "so a mask one pixel wide or tall has no inside)"
        )
    return box


def load_foreground_mask(path: str | Path) -> np.ndarray:
    """DMT's box (see ``foreground_box``) of the foreground mask image at ``path``, at its own size."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable mask image")
    return foreground_box(image)


def points_in_mask(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each point (N, 2) x, y falls on the mask, at its rounded pixel (as CoTracker)."""
    height, width = mask.shape
    cols = np.clip(np.round(points[:, 0]).astype(np.int64), 0, width - 1)
    rows = np.clip(np.round(points[:, 1]).astype(np.int64), 0, height - 1)
    return mask[rows, cols]


class OpenCVLucasKanadeTracker:
    """Grid of points on frame 0 tracked frame to frame with pyramidal Lucas-Kanade.

    Each step t -> t+1 is checked forward-backward: the point is tracked to t+1 and back to
    t. A point is lost at that step if either direction reports status 0, if the round trip
    misses its start by more than ``fb_threshold`` px, or if it leaves the frame. "Leaving"
    means coming closer than ``border_margin`` px to the border. Seeds start ``margin`` px
    inside the frame. A lost point drops its whole track: the metric compares displacement
    sequences time step by time step, so every kept track must span the whole clip.

    ``colour``: track on the RGB frames (OpenCV solves Lucas-Kanade over all channels) instead
    of their grey level. An object of another hue but similar brightness than its background
    (the sample's red disc on a grey floor: grey 87 on a floor of 128 +- 40) has almost no
    grey-level edge, and its points then stick to the floor.

    The defaults (``conf/base/parameters_evaluate.yml`` says why) suit 32x32 clips; the
    constructor's own defaults are the same.
    """

    def __init__(
        self,
        grid_size: int = 32,
        win_size: int = 7,
        pyramid_levels: int = 3,
        max_iterations: int = 30,
        epsilon: float = 0.01,
        fb_threshold: float = 1.0,
        margin: int = 1,
        border_margin: float = 0.0,
        colour: bool = True,
        min_eigenvalue: float = 3e-3,
    ) -> None:
        """Configure the tracker.

        Args:
            grid_size: points per side of the square seed grid (grid_size**2 seeds).
            win_size: side of the Lucas-Kanade search window in pixels.
            pyramid_levels: highest pyramid level (0 = no pyramid), OpenCV's ``maxLevel``.
            max_iterations: iteration cap of the per-level solver (termination criterion).
            epsilon: minimum update in pixels before the solver stops (termination criterion).
            fb_threshold: largest accepted forward-backward round-trip error in pixels.
            margin: distance in pixels from the outer seeds to the frame border.
            border_margin: a tracked point closer than this many pixels to the border has
                left the frame (0: only points outside the frame are lost).
            colour: track on RGB (True) or on grey levels (False).
            min_eigenvalue: OpenCV's ``minEigThreshold``: a point whose window's smaller
                gradient-matrix eigenvalue (per pixel, OpenCV's scaling) is below it is lost, as
                on a flat area or a smooth gradient, where the flow is not determined.
        """
        if grid_size < 1:
            raise ValueError(f"grid_size must be >= 1, got {grid_size}")
        if win_size < 3:
            raise ValueError(f"win_size must be >= 3, got {win_size}")
        if pyramid_levels < 0:
            raise ValueError(f"pyramid_levels must be >= 0, got {pyramid_levels}")
        if fb_threshold < 0:
            raise ValueError(f"fb_threshold must be >= 0, got {fb_threshold}")
        if margin < 0 or border_margin < 0:
            raise ValueError(f"margins must be >= 0, got margin={margin}, border_margin={border_margin}")
        self.grid_size = grid_size
        self.win_size = win_size
        self.pyramid_levels = pyramid_levels
        self.max_iterations = max_iterations
        self.epsilon = epsilon
        self.fb_threshold = fb_threshold
        self.margin = margin
        self.border_margin = float(border_margin)
        self.colour = bool(colour)
        if min_eigenvalue < 0:
            raise ValueError(f"min_eigenvalue must be >= 0, got {min_eigenvalue}")
        self.min_eigenvalue = float(min_eigenvalue)

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
        self, from_image: np.ndarray, to_image: np.ndarray, points: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Track points (N, 2) from one frame to the next; return (N, 2) and (N,) status."""
        criteria = (
            cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT,
            self.max_iterations,
            self.epsilon,
        )
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            from_image,
            to_image,
            points.reshape(-1, 1, 2),
            None,
            winSize=(self.win_size, self.win_size),
            maxLevel=self.pyramid_levels,
            criteria=criteria,
            minEigThreshold=self.min_eigenvalue,
        )
        return moved.reshape(-1, 2), status.reshape(-1).astype(bool)

    def track(self, frames: np.ndarray, mask: np.ndarray | None = None) -> Tracks:
        """Track the seed grid (the seeds on ``mask`` when given) through ``frames`` (F, H, W, 3) uint8 RGB.

        Returns:
            Tracks with positions (P, F, 2), P <= grid_size**2 (lost tracks dropped) and
            ``query_ids`` the seeds' indices in the row-major grid.
        """
        _check_frames(frames)
        num_frames, height, width = frames.shape[:3]
        seeds = self.grid_points(height, width)
        seed_ids = np.arange(seeds.shape[0], dtype=np.int64)
        if mask is not None:
            on_mask = points_in_mask(seeds, mask_at(mask, height, width))
            seeds, seed_ids = seeds[on_mask], seed_ids[on_mask]
        positions = np.zeros((seeds.shape[0], num_frames, 2), dtype=np.float32)
        positions[:, 0] = seeds
        alive = np.ones(seeds.shape[0], dtype=bool)
        if self.colour:
            images = [np.ascontiguousarray(frame) for frame in frames]
        else:
            images = [cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in frames]

        for step in range(num_frames - 1):
            alive_ids = np.flatnonzero(alive)
            if alive_ids.size == 0:
                break
            start = np.ascontiguousarray(positions[alive_ids, step])
            forward, forward_ok = self._flow(images[step], images[step + 1], start)
            backward, backward_ok = self._flow(images[step + 1], images[step], forward)
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
            query_ids=seed_ids[alive],
        )


# CoTracker3's torch.hub entry (facebookresearch/co-tracker hubconf.py): the offline model that DMT
# (motion_fidelity_score.py, through CoTrackerPredictor) and DiTFlow evaluate with.
COTRACKER_HUB_ENTRY = "cotracker3_offline"


class CoTrackerTracker:
    """CoTracker3 (offline) from a local clone of facebookresearch/co-tracker and a checkpoint.

    The model is built with ``torch.hub.load(repo_dir, "cotracker3_offline", source="local",
    pretrained=False)`` (nothing is downloaded) and the checkpoint is loaded into it with
    ``torch.load(..., weights_only=True)``. Points are seeded on CoTracker's own
    ``grid_size`` x ``grid_size`` grid of frame 0 (``predictor(video, grid_size=..., segm_mask=...)``,
    as DMT calls it). CoTracker returns every queried point with a visibility per frame;
    ``drop_invisible`` drops a track as soon as it is not visible in some frame (a lost point,
    as the Lucas-Kanade tracker does), else every track is kept with its visibility.
    """

    def __init__(
        self,
        repo_dir: str | Path,
        checkpoint: str | Path,
        grid_size: int = 55,
        drop_invisible: bool = True,
        device: str = "cpu",
    ) -> None:
        """Load the model.

        Args:
            repo_dir: local clone of facebookresearch/co-tracker (the folder with ``hubconf.py``).
            checkpoint: CoTracker3 offline weights (``scaled_offline.pth``), a state dict.
            grid_size: points per side of the seed grid (DMT and DiTFlow: 55).
            drop_invisible: drop tracks not visible in every frame.
            device: torch device to run on.
        """
        problems = cotracker_path_problems(repo_dir, checkpoint)
        if problems:
            raise ValueError("; ".join(problems))
        if grid_size < 1:
            raise ValueError(f"grid_size must be >= 1, got {grid_size}")
        import torch

        self.repo_dir = Path(repo_dir)
        self.checkpoint = Path(checkpoint)
        self.grid_size = int(grid_size)
        self.drop_invisible = bool(drop_invisible)
        self.device = torch.device(device)
        # The model code seeds torch's global generator when first imported: keep the caller's stream.
        with torch.random.fork_rng(devices=[]):
            predictor = torch.hub.load(
                str(self.repo_dir), COTRACKER_HUB_ENTRY, source="local", pretrained=False
            )
        state_dict = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        if isinstance(state_dict, dict) and "model" in state_dict and isinstance(state_dict["model"], dict):
            state_dict = state_dict["model"]  # a training checkpoint (what co-tracker's own loader accepts)
        try:
            predictor.model.load_state_dict(state_dict)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise ValueError(f"{self.checkpoint}: not a CoTracker3 offline checkpoint ({first})") from None
        self.predictor = predictor.to(self.device).eval()

    def predict(
        self, frames: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CoTracker's raw output on ``frames`` (F, H, W, 3) uint8 RGB: positions (N, F, 2) float32 x, y in
        pixels, visibility (N, F) bool and (N,) the index of each point in CoTracker's row-major seed grid,
        for every seed of the grid (on ``mask`` when given)."""
        import torch
        import torch.nn.functional as F

        _check_frames(frames)
        height, width = frames.shape[1:3]
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None].float().to(self.device)
        segm_mask = None
        seed_ids = np.arange(self.grid_size**2, dtype=np.int64)
        if mask is not None:
            segm_mask = torch.from_numpy(mask_at(mask, height, width).astype(np.float32))[None, None].to(self.device)
            # Which grid seeds CoTrackerPredictor keeps (its _compute_sparse_tracks): the mask resized to the
            # model's resolution (nearest), read at each seed's rounded pixel of its own grid function.
            grid_function = sys.modules[type(self.predictor).__module__].get_points_on_a_grid
            grid = grid_function(self.grid_size, self.predictor.interp_shape, device="cpu")[0]
            resized = F.interpolate(segm_mask.cpu(), tuple(self.predictor.interp_shape), mode="nearest")[0, 0]
            seed_ids = seed_ids[resized[grid[:, 1].round().long(), grid[:, 0].round().long()].bool().numpy()]
        with torch.no_grad():
            tracks, visibility = self.predictor(video, grid_size=self.grid_size, segm_mask=segm_mask)
        positions = tracks[0].permute(1, 0, 2).float().cpu().numpy()
        visible = visibility[0].permute(1, 0).cpu().numpy().astype(bool)
        if len(seed_ids) != len(positions):
            raise RuntimeError(f"CoTracker returned {len(positions)} points for {len(seed_ids)} seeds")
        return positions, visible, seed_ids

    def track(self, frames: np.ndarray, mask: np.ndarray | None = None) -> Tracks:
        """Track CoTracker's seed grid through ``frames`` (F, H, W, 3) uint8 RGB."""
        positions, visible, seed_ids = self.predict(frames, mask)
        return visible_tracks(positions, visible, seed_ids, frames.shape[1:3], self.drop_invisible)


def visible_tracks(
    positions: np.ndarray, visible: np.ndarray, seed_ids: np.ndarray, frame_size: tuple[int, int],
    drop_invisible: bool,
) -> Tracks:
    """Tracks from a tracker's raw output, positions (N, F, 2), visibility (N, F) and seed ids (N,): with
    ``drop_invisible`` only the tracks visible in every frame (a point lost once is lost), else all of them."""
    kept = visible.all(axis=1) if drop_invisible else np.ones(len(positions), dtype=bool)
    return Tracks(
        positions=positions[kept].astype(np.float32),
        visible=visible[kept].astype(bool),
        frame_size=(int(frame_size[0]), int(frame_size[1])),
        query_ids=np.asarray(seed_ids, dtype=np.int64)[kept],
    )


def cotracker_path_problems(repo_dir: object, checkpoint: object, section: str = "") -> list[str]:
    """One line per missing CoTracker path: the clone (with its ``hubconf.py``) and the checkpoint file."""
    prefix = f"{section}." if section else ""
    problems = []
    if not repo_dir or not (Path(str(repo_dir)) / "hubconf.py").is_file():
        problems.append(
            f"{prefix}repo_dir: {repo_dir} is not a clone of facebookresearch/co-tracker (no hubconf.py there)"
        )
    if not checkpoint or not Path(str(checkpoint)).is_file():
        problems.append(f"{prefix}checkpoint: {checkpoint} is not a file (CoTracker3's scaled_offline.pth)")
    return problems


TRACKERS: dict[str, Callable[..., Tracker]] = {
    "opencv_lk": OpenCVLucasKanadeTracker,
    "cotracker": CoTrackerTracker,
}


def tracker_option_names(name: str) -> list[str]:
    """The constructor options of the tracker registered as ``name``."""
    factory = TRACKERS[name]
    return [p for p in inspect.signature(factory).parameters if p not in ("self", "args", "kwargs")]


def tracker_problems(name: object, options: Mapping[str, Any], section: str = "evaluate") -> list[str]:
    """Every problem of ``<section>.tracker`` and ``<section>.tracker_options``, one line each, without
    building the tracker (so a CoTracker path is checked before any work starts)."""
    if name not in TRACKERS:
        return [f"{section}.tracker: '{name}' is not one of {sorted(TRACKERS)}"]
    problems = unknown_key_problems(f"{section}.tracker_options", options, tracker_option_names(str(name)))
    if name == "cotracker":
        problems += cotracker_path_problems(
            options.get("repo_dir"), options.get("checkpoint"), section=f"{section}.tracker_options"
        )
    return problems


def build_tracker(name: str, **kwargs: object) -> Tracker:
    """Build the tracker registered as ``name`` with constructor ``kwargs``."""
    if name not in TRACKERS:
        known = ", ".join(sorted(TRACKERS))
        raise ValueError(f"unknown tracker {name!r}; known trackers: {known}")
    unknown = unknown_key_problems("tracker_options", kwargs, tracker_option_names(name))
    if unknown:
        raise ValueError(f"{name}: " + "; ".join(unknown))
    return TRACKERS[name](**kwargs)
