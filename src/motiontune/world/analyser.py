"""Read a motion-world clip back without ground truth: which object, what shape, how it moves.

Steps (all per clip of F frames, H x W):

1. **Colour segmentation** in HSV against the world's palette: a pixel is object-coloured when its
   chroma (max - min channel, = S * V) reaches half the clip's object chroma (a high percentile),
   never less than a floor above every background, and its hue is within ``max_hue_distance`` of
   a palette hue (nearest wins); white is low chroma and bright. Chroma is linear in how much of
   a pixel the object covers, so the cut sits at half coverage of anti-aliased edges whatever the
   saturation: areas are unbiased and washed-out objects (generated videos) are still found.
2. **The object**: for every palette colour, the largest 8-connected blob per frame; the colour
   whose blobs are largest over the clip wins. Its blob gives the per-frame centroid and area.
   A clip where the blob is missing in too many frames, or is a small share of its colour's
   pixels (noise), is ``found=False``.
3. **Shape**: rotation-invariant contour features of the blob (solidity, fill of the minimum-area
   rectangle and of the enclosing circle, approxPolyDP vertex count), classified by nearest
   neighbours among the same features measured on the world's own shapes rendered at the sizes
   the world uses (a calibration from the shape definitions, not from any sample's truth);
   per-frame votes decide the clip's shape.
4. **Motion**: velocity by least squares over the present frames gives the net direction (one of
   eight, or "static"); the path is "static", "line" or "curve" by its spread across its best-fit
   line; curves that enclose area get a rotation sense; a log-area regression gives the area trend.
5. **Camera**: background points (textured, away from the object) are tracked frame to frame with
   Lucas-Kanade, kept only where the patch persists (noise and flicker do not), and fitted with a
   similarity transform (RANSAC): accumulated scale says zoom, accumulated translation says pan;
   without enough texture the camera is "unknown".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from motiontune.sections import build_section
from motiontune.world.motions import MotionPlan, MotionTruth
from motiontune.world.rendering import make_background, render_clip
from motiontune.world.spec import BackgroundSettings, WorldSpec
from motiontune.world.vocabulary import PALETTE, SHAPES, STATIC, direction_of_vector

NO_COLOUR = -1
CAMERA_UNKNOWN = "unknown"
# Structure tensor of cv2.cornerMinEigenVal: 5 px neighbourhood, 3x3 Sobel derivatives (the
# scale ``camera_min_eigenvalue`` was measured at: texture ~1e-3, gradient backgrounds ~3e-6).
_EIGEN_BLOCK = 5
_SOBEL_APERTURE = 3
# Lucas-Kanade solver stop: 30 iterations or 0.01 px updates (OpenCV's usual, as in trackers.py).
_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)


@dataclass(frozen=True)
class AnalyserConfig:
    """Thresholds of the analyser; defaults are those of ``conf/base/parameters_world.yml``.

    Attributes:
        chroma_share: a pixel is object-coloured from this share of the clip's object chroma
            (its ``chroma_percentile``-th chroma percentile); 0.5 puts the cut at half coverage of
            anti-aliased edges whatever the saturation, so areas are unbiased and washed-out
            objects (generated videos) are still found.
        chroma_percentile: percentile of the clip's chroma taken as the object's chroma.
        min_chroma: floor of the chroma cut (chroma = (max - min channel) / 255), above every
            background (<= 0.12) so a clip without an object stays empty.
        max_hue_distance: degrees; a coloured pixel farther from every palette hue is ignored.
        white_max_chroma, white_min_value: a pixel is white below this chroma and above this value.
        min_area_fraction: smallest blob, as a share of the frame, that counts as the object.
        min_present_fraction: share of frames the object must be present in for ``found``.
        min_purity: mean share of its colour's pixels the blob must hold for ``found``.
        static_fraction: net displacement below this share of the shorter side is "static".
        curve_residual: rms distance from the best-fit line over the extent along it above which
            a path is a "curve".
        rotation_min_fill: a curve gets a rotation sense when the area it encloses is at least this
            share of the circle over its extent (a circle ~0.8, a zigzag ~0).
        area_trend_ratio: last/first area (by regression) above this is "grow", below 1/this "shrink".
        shape_neighbours: nearest calibration examples voting on a frame's shape.
        shape_calibration_offsets: sub-pixel placements per shape and size in the calibration.
        shape_calibration_sizes: sizes per shape in the calibration (spanning the world's range).
        shape_calibration_blurs: Gaussian sigmas (px) of blurred copies added to the calibration,
            so soft edges (generated videos) still find their shape's examples; () = crisp only.
        approx_poly_epsilon: approxPolyDP tolerance as a share of the contour's perimeter.
        camera_grid: background points are seeded on a grid of this many per side.
        camera_min_points: tracked background points a step needs to count.
        camera_min_eigenvalue: smallest-eigenvalue threshold of the structure tensor
            (cv2.cornerMinEigenVal, 5 px block) for a textured, trackable point.
        camera_object_clearance: px kept between background points and the object mask.
        camera_max_residual_ratio: a tracked point counts only if Lucas-Kanade's residual (mean
            absolute difference of the matched patches) is below this share of the patch's own
            contrast: true texture persists (~0.1), per-frame noise does not (~1).
        camera_static_fraction: accumulated background travel below this share of the side (and
            no zoom) is a "static" camera.
        camera_zoom_ratio: accumulated scale above this is "zoom_in", below 1/this "zoom_out".
        lk_window: Lucas-Kanade window side in px.
        lk_levels: pyramid levels above the frame (2 follows steps up to ~4 windows).
        ransac_threshold: px of reprojection error above which a background track is an outlier.
    """

    chroma_share: float = 0.5
    chroma_percentile: float = 99.0
    min_chroma: float = 0.2
    max_hue_distance: float = 30.0
    white_max_chroma: float = 0.15
    white_min_value: float = 0.8
    min_area_fraction: float = 0.005
    min_present_fraction: float = 0.5
    min_purity: float = 0.5
    static_fraction: float = 0.06
    curve_residual: float = 0.12
    rotation_min_fill: float = 0.25
    area_trend_ratio: float = 1.3
    shape_neighbours: int = 5
    shape_calibration_offsets: int = 6
    shape_calibration_sizes: int = 6
    shape_calibration_blurs: tuple[float, ...] = (1.0, 2.0)
    approx_poly_epsilon: float = 0.04
    camera_grid: int = 12
    camera_min_points: int = 8
    camera_min_eigenvalue: float = 1e-4
    camera_object_clearance: int = 3
    camera_max_residual_ratio: float = 0.5
    camera_static_fraction: float = 0.04
    camera_zoom_ratio: float = 1.15
    lk_window: int = 9
    lk_levels: int = 2
    ransac_threshold: float = 1.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> AnalyserConfig:
        """Build from ``world.analyser`` parameters (None = defaults; unknown keys raise)."""
        # YAML lists become tuples, so the config stays hashable (it keys the calibration cache).
        return build_section(cls, params, "world.analyser")


@dataclass(frozen=True)
class VideoAnalysis:
    """What the analyser read from one clip.

    Attributes:
        found: an object was present in enough frames and was a coherent blob.
        confidence: present share of frames times mean blob purity, in [0, 1].
        colour: palette name of the object (None when no object-coloured pixel at all).
        shape: shape name (None when not found).
        shape_confidence: share of frame votes for ``shape``.
        centroids: (F, 2) float64 blob centroid x, y per frame, NaN where absent.
        areas: (F,) float64 blob area in px per frame, 0 where absent.
        present: (F,) bool, blob present in the frame.
        direction: one of the eight direction names (the overall drift, also for curves),
            "static", or None (object in fewer than 2 frames).
        path_kind: "static", "line", "curve" or None.
        rotation: "clockwise"/"counterclockwise" for curves that enclose area, else None.
        velocity: (2,) px per frame by least squares (NaN when unknown).
        speed: |velocity| px per frame.
        travel: |velocity| * (F - 1) / shorter side: distance over the clip as a share of the side.
        area_trend: "grow", "shrink", "steady" or None.
        area_ratio: last/first area by log-area regression (NaN when unknown).
        camera: "static", "pan", "zoom_in", "zoom_out" or "unknown" (not enough texture).
        background_direction: direction the background moves on screen for a pan, else None.
        camera_scale: accumulated background scale over the clip.
        colour_shares: palette name -> share of the object-coloured pixels of the clip.
        frame_size: (H, W).
    """

    found: bool
    confidence: float
    colour: str | None
    shape: str | None
    shape_confidence: float
    centroids: np.ndarray
    areas: np.ndarray
    present: np.ndarray
    direction: str | None
    path_kind: str | None
    rotation: str | None
    velocity: np.ndarray
    speed: float
    travel: float
    area_trend: str | None
    area_ratio: float
    camera: str
    background_direction: str | None
    camera_scale: float
    colour_shares: dict[str, float] = field(default_factory=dict)
    frame_size: tuple[int, int] = (0, 0)


# --------------------------------------------------------------------------- segmentation


def _check_frames(frames: np.ndarray) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(
            f"frames must be uint8 (F, H, W, 3) RGB with F >= 1, got {frames.dtype} {frames.shape}"
        )


# OpenCV's 8-bit HSV stores hue / 2, so 180 steps cover the circle.
_HUE_STEPS = 180


@functools.lru_cache(maxsize=32)
def _hue_table(colours: tuple[str, ...], max_hue_distance: float) -> np.ndarray:
    """(180,) int8: for each 8-bit hue, the index of the nearest chromatic palette colour within
    ``max_hue_distance`` degrees, else -1."""
    hues = np.arange(_HUE_STEPS) * (360.0 / _HUE_STEPS)
    table = np.full(_HUE_STEPS, NO_COLOUR, dtype=np.int8)
    chromatic = [i for i, name in enumerate(colours) if not PALETTE[name].achromatic]
    if chromatic:
        palette_hues = np.array([PALETTE[colours[i]].hue_degrees for i in chromatic])
        distance = np.abs(hues[:, None] - palette_hues[None, :])
        distance = np.minimum(distance, 360.0 - distance)  # hue is circular
        nearest = distance.argmin(axis=1)
        close = distance[np.arange(_HUE_STEPS), nearest] <= max_hue_distance
        table[close] = np.asarray(chromatic)[nearest[close]]
    return table


def segment_colours(frames: np.ndarray, colours: Sequence[str], config: AnalyserConfig) -> np.ndarray:
    """Palette label of every pixel: index into ``colours``, or -1 (background / unassigned).

    Args:
        frames: (F, H, W, 3) uint8 RGB.
        colours: palette names to look for.

    Returns:
        (F, H, W) int8 labels.
    """
    _check_frames(frames)
    num_frames, height, width, _ = frames.shape
    flat = frames.reshape(num_frames * height, width, 3)
    # Chroma exactly, from the 8-bit channels; hue from OpenCV's 8-bit HSV (2-degree steps, far
    # finer than the palette spacing) so a 180-entry lookup table replaces per-pixel distances.
    red, green, blue = flat[..., 0], flat[..., 1], flat[..., 2]
    # Elementwise max/min of the three planes: much faster than reducing over a length-3 axis.
    brightest = np.maximum(np.maximum(red, green), blue)
    darkest = np.minimum(np.minimum(red, green), blue)
    chroma = (brightest - darkest) / np.float32(255.0)
    value = brightest / np.float32(255.0)
    hue_steps = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV)[..., 0]
    labels = np.full(hue_steps.shape, NO_COLOUR, dtype=np.int8)
    hue_table = _hue_table(tuple(colours), config.max_hue_distance)
    object_chroma = float(np.percentile(chroma, config.chroma_percentile))
    coloured = chroma >= max(config.min_chroma, config.chroma_share * object_chroma)
    labels[coloured] = hue_table[hue_steps[coloured]]
    for index, name in enumerate(colours):
        if PALETTE[name].achromatic:
            labels[(chroma < config.white_max_chroma) & (value >= config.white_min_value)] = index
    labels = labels.reshape(num_frames, height, width)
    return labels


def _largest_blob(mask: np.ndarray) -> tuple[np.ndarray | None, int, np.ndarray]:
    """Largest 8-connected blob of a (H, W) bool mask: (blob mask or None, area px, centroid (2,))."""
    count, blob_labels, stats, centroids = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return None, 0, np.full(2, np.nan)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return blob_labels == best, int(stats[best, cv2.CC_STAT_AREA]), centroids[best].astype(np.float64)


# --------------------------------------------------------------------------- shape


SHAPE_FEATURES = ("solidity", "rect_fill", "circle_fill", "vertices")


def shape_features(blob: np.ndarray, config: AnalyserConfig) -> np.ndarray | None:
    """Rotation-invariant features (4,) of a (H, W) bool blob, None when it has no usable contour.

    solidity = area / convex hull area (the star is ~0.6, convex shapes ~1); rect_fill = area /
    minimum-area rectangle (square 1, circle pi/4, triangle 1/2); circle_fill = area / enclosing
    circle (circle 1, square 2/pi, triangle ~0.41); vertices = corners of approxPolyDP.
    """
    contours, _ = cv2.findContours(blob.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    # Contours run through pixel centres, so a blob of n pixels has a polygon area of about
    # n - perimeter / 2; the calibration on rendered shapes measures the same bias.
    area = cv2.contourArea(contour)
    if area <= 0.0:
        return None
    hull_area = cv2.contourArea(cv2.convexHull(contour))
    rect_w, rect_h = cv2.minAreaRect(contour)[1]
    radius = cv2.minEnclosingCircle(contour)[1]
    perimeter = cv2.arcLength(contour, True)
    vertices = len(cv2.approxPolyDP(contour, config.approx_poly_epsilon * perimeter, True))
    return np.array(
        [
            area / max(hull_area, 1e-9),
            area / max(rect_w * rect_h, 1e-9),
            area / max(math.pi * radius**2, 1e-9),
            float(vertices),
        ]
    )


@dataclass(frozen=True)
class ShapeCalibration:
    """Feature vectors of the world's shapes as the analyser sees them.

    Attributes:
        shapes: shape names.
        features: (N, D) calibration feature vectors.
        labels: (N,) index into ``shapes`` of each vector.
        scale: (D,) per-feature standard deviation used to normalise distances.
    """

    shapes: tuple[str, ...]
    features: np.ndarray
    labels: np.ndarray
    scale: np.ndarray

    def classify(self, features: np.ndarray, neighbours: int) -> int:
        """Index of the shape the nearest ``neighbours`` calibration vectors vote for."""
        distance = np.linalg.norm((self.features - features) / self.scale, axis=1)
        nearest = np.argsort(distance)[:neighbours]
        votes = np.bincount(self.labels[nearest], minlength=len(self.shapes))
        return int(np.argmax(votes))


@functools.lru_cache(maxsize=16)
def _calibrate(
    shapes: tuple[str, ...],
    frame_size: tuple[int, int],
    size_limits: tuple[float, float],
    supersample: int,
    config: AnalyserConfig,
) -> ShapeCalibration:
    """Render every shape at sizes spanning ``size_limits`` px with random sub-pixel offsets on a
    plain grey, crisp and blurred (generated videos are soft), segment it like any clip and
    record its features."""
    height, width = frame_size
    rng = np.random.default_rng(0)  # fixed: the calibration is part of the analyser, not of a sample
    flat = make_background("plain", frame_size, BackgroundSettings(max_chroma=0.0), np.random.default_rng(0))
    features, labels = [], []
    sizes = np.geomspace(size_limits[0], size_limits[1], config.shape_calibration_sizes)
    offsets = rng.uniform(-0.5, 0.5, size=(config.shape_calibration_offsets, 2))
    red = next(name for name, colour in PALETTE.items() if not colour.achromatic)
    for label, shape in enumerate(shapes):
        for size in sizes:
            centres = np.array([width / 2.0, height / 2.0]) + offsets
            plan = MotionPlan(
                centres=centres,
                sizes=np.full(len(centres), size),
                camera_transforms=None,
                canvas_size=frame_size,
                truth=MotionTruth("calibration", {}, "static", STATIC, "static", None, "steady"),
            )
            crisp = render_clip(plan, flat, SHAPES[shape], PALETTE[red].rgb, frame_size, supersample)
            clips = [crisp] + [
                np.stack([cv2.GaussianBlur(frame, (0, 0), sigma) for frame in crisp])
                for sigma in config.shape_calibration_blurs
            ]
            for frame_labels in segment_colours(np.concatenate(clips), (red,), config):
                blob, _, _ = _largest_blob(frame_labels == 0)
                vector = None if blob is None else shape_features(blob, config)
                if vector is not None:
                    features.append(vector)
                    labels.append(label)
    features_array = np.asarray(features)
    scale = np.maximum(features_array.std(axis=0), 1e-3)
    return ShapeCalibration(shapes, features_array, np.asarray(labels), scale)


def shape_calibration(spec: WorldSpec, config: AnalyserConfig) -> ShapeCalibration:
    """The (cached) calibration for a world: its shapes over every size its motions can draw."""
    low, high = spec.object.size_range
    # Grow/shrink and zoom scale the drawn size by up to sqrt(factor) either way.
    stretch = math.sqrt(max(spec.motion.scale_factor, spec.motion.zoom_factor, 1.0))
    limits = (low * spec.side / stretch, high * spec.side * stretch)
    return _calibrate(tuple(spec.shapes), (spec.height, spec.width), limits, spec.supersample, config)


def _touches_border(blob: np.ndarray) -> bool:
    return bool(blob[0].any() or blob[-1].any() or blob[:, 0].any() or blob[:, -1].any())


# --------------------------------------------------------------------------- motion


def _fit_velocity(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of values (N, D) over times (N,), (D,)."""
    centred_times = times - times.mean()
    return (centred_times @ (values - values.mean(axis=0))) / max(float(centred_times @ centred_times), 1e-12)


def _path_summary(
    centroids: np.ndarray, present: np.ndarray, side: int, num_frames: int, config: AnalyserConfig
) -> dict[str, Any]:
    """Direction, path kind, rotation, velocity, speed and travel of a centroid track."""
    summary: dict[str, Any] = {
        "direction": None,
        "path_kind": None,
        "rotation": None,
        "velocity": np.full(2, np.nan),
        "speed": float("nan"),
        "travel": float("nan"),
    }
    times = np.flatnonzero(present).astype(np.float64)
    if times.size < 2:
        return summary
    points = centroids[present]
    velocity = _fit_velocity(times, points)
    net = velocity * (num_frames - 1)
    static_limit = config.static_fraction * side
    summary["velocity"] = velocity
    summary["speed"] = float(np.linalg.norm(velocity))
    summary["travel"] = float(np.linalg.norm(net)) / side
    summary["direction"] = STATIC if np.linalg.norm(net) < static_limit else direction_of_vector(net)

    centred = points - points.mean(axis=0)
    # Principal axes of the point cloud: the path's best-fit line and the spread across it.
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(points))
    along = centred @ eigenvectors[:, 1]
    extent = float(np.ptp(along))
    residual = math.sqrt(max(float(eigenvalues[0]), 0.0))
    if extent < static_limit:
        summary["path_kind"] = STATIC
    elif residual / extent > config.curve_residual:
        summary["path_kind"] = "curve"
        x, y = points[:, 0], points[:, 1]
        # Shoelace over the closed path; with y pointing down a positive area turns clockwise.
        signed_area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        if abs(signed_area) >= config.rotation_min_fill * math.pi * (extent / 2.0) ** 2:
            summary["rotation"] = "clockwise" if signed_area > 0 else "counterclockwise"
    else:
        summary["path_kind"] = "line"
    return summary


def _area_summary(
    areas: np.ndarray, present: np.ndarray, num_frames: int, config: AnalyserConfig
) -> tuple[str | None, float]:
    times = np.flatnonzero(present).astype(np.float64)
    if times.size < 2:
        return None, float("nan")
    slope = _fit_velocity(times, np.log(areas[present])[:, None])[0]
    ratio = float(math.exp(slope * (num_frames - 1)))
    if ratio >= config.area_trend_ratio:
        return "grow", ratio
    if ratio <= 1.0 / config.area_trend_ratio:
        return "shrink", ratio
    return "steady", ratio


def _local_contrast(grey: np.ndarray, window: int) -> np.ndarray:
    """Mean absolute deviation (H, W) of a grey image over ``window`` x ``window`` neighbourhoods,
    estimated as sqrt(2 / pi) * standard deviation (exact for Gaussian texture), the scale of
    Lucas-Kanade's residual (a mean absolute difference per pixel)."""
    image = grey.astype(np.float32)
    mean = cv2.blur(image, (window, window))
    variance = np.maximum(cv2.blur(image * image, (window, window)) - mean * mean, 0.0)
    return math.sqrt(2.0 / math.pi) * np.sqrt(variance)


def _camera_summary(
    frames: np.ndarray, object_masks: np.ndarray, config: AnalyserConfig
) -> tuple[str, str | None, float]:
    """Camera motion from textured background points: (camera, background direction, scale)."""
    num_frames, height, width, _ = frames.shape
    side = min(height, width)
    grey = [cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) for frame in frames]
    margin = config.lk_window // 2 + 1
    axis_x = np.linspace(margin, width - 1 - margin, config.camera_grid)
    axis_y = np.linspace(margin, height - 1 - margin, config.camera_grid)
    grid = np.stack(np.meshgrid(axis_x, axis_y), axis=-1).reshape(-1, 2).astype(np.float32)
    grid_cols = np.round(grid[:, 0]).astype(int)
    grid_rows = np.round(grid[:, 1]).astype(int)
    kernel = np.ones((2 * config.camera_object_clearance + 1,) * 2, dtype=np.uint8)
    keep_out = [cv2.dilate(mask.astype(np.uint8), kernel) > 0 for mask in object_masks]
    contrast = [_local_contrast(image, config.lk_window) for image in grey]
    lk_args = {
        "winSize": (config.lk_window, config.lk_window),
        "maxLevel": config.lk_levels,
        "criteria": _LK_CRITERIA,
    }
    translation = np.zeros(2)
    scale = 1.0
    usable_steps = 0
    for step in range(num_frames - 1):
        texture = cv2.cornerMinEigenVal(grey[step], _EIGEN_BLOCK, ksize=_SOBEL_APERTURE)
        seeds_ok = (texture[grid_rows, grid_cols] >= config.camera_min_eigenvalue) & ~keep_out[step][
            grid_rows, grid_cols
        ]
        seeds = grid[seeds_ok]
        seed_rows, seed_cols = grid_rows[seeds_ok], grid_cols[seeds_ok]
        if len(seeds) < config.camera_min_points:
            continue
        # One forward pass per step: RANSAC in the similarity fit below rejects the few bad
        # tracks a forward-backward check would catch, at half the cost.
        moved, tracked, residual = cv2.calcOpticalFlowPyrLK(
            grey[step], grey[step + 1], seeds.reshape(-1, 1, 2), None, **lk_args
        )
        moved = moved.reshape(-1, 2)
        inside = (
            (moved[:, 0] >= 0) & (moved[:, 0] <= width - 1) & (moved[:, 1] >= 0) & (moved[:, 1] <= height - 1)
        )
        # Texture that persists matches its patch in the next frame far better than the patch's
        # own contrast; per-frame noise or flicker (generated videos) does not, and would
        # otherwise be "tracked" into random pans and zooms.
        persistent = (
            residual.ravel() <= config.camera_max_residual_ratio * contrast[step][seed_rows, seed_cols]
        )
        ok = tracked.ravel().astype(bool) & inside & np.isfinite(moved).all(axis=1) & persistent
        if ok.any():
            # Points that land on the object in the next frame were occluded, not moved.
            landing_cols = np.clip(np.round(np.nan_to_num(moved[:, 0])).astype(int), 0, width - 1)
            landing_rows = np.clip(np.round(np.nan_to_num(moved[:, 1])).astype(int), 0, height - 1)
            ok &= ~keep_out[step + 1][landing_rows, landing_cols]
        if ok.sum() < config.camera_min_points:
            continue
        matrix, _ = cv2.estimateAffinePartial2D(
            seeds[ok], moved[ok], method=cv2.RANSAC, ransacReprojThreshold=config.ransac_threshold
        )
        if matrix is None:
            continue
        usable_steps += 1
        step_scale = float(math.hypot(matrix[0, 0], matrix[1, 0]))
        scale *= step_scale
        # Translation of the frame centre, which for a pure pan is the pan itself.
        centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        translation += matrix[:, :2] @ centre + matrix[:, 2] - centre
    if usable_steps < max(1, (num_frames - 1) // 2):
        return CAMERA_UNKNOWN, None, float("nan")
    # Steps without enough points are skipped: extrapolate the accumulated motion to the clip.
    extrapolate = (num_frames - 1) / usable_steps
    scale = scale**extrapolate
    translation = translation * extrapolate
    if scale >= config.camera_zoom_ratio:
        return "zoom_in", None, scale
    if scale <= 1.0 / config.camera_zoom_ratio:
        return "zoom_out", None, scale
    if np.linalg.norm(translation) >= config.camera_static_fraction * side:
        return "pan", direction_of_vector(translation), scale
    return STATIC, None, scale


# --------------------------------------------------------------------------- entry point


def analyse_video(frames: np.ndarray, spec: WorldSpec, config: AnalyserConfig | None = None) -> VideoAnalysis:
    """Analyse a clip (F, H, W, 3) uint8 RGB against the palette and shapes of ``spec``.

    Only the world's vocabulary is used (``spec.colours``, ``spec.shapes`` and the size range for
    the shape calibration), never a sample's ground truth, so it reads generated videos too. The
    clip may have any F >= 1 and any H, W (the calibration adapts to the frame size).
    """
    config = config or AnalyserConfig()
    _check_frames(frames)
    num_frames, height, width, _ = frames.shape
    side = min(height, width)
    colours = tuple(spec.colours)
    labels = segment_colours(frames, colours, config)
    min_area = config.min_area_fraction * height * width

    # The object's colour: the one whose largest blobs are largest over the clip (a colour
    # scattered in specks, as in noise, scores low even with many pixels).
    counts = np.bincount(labels[labels >= 0].ravel().astype(np.int64), minlength=len(colours))
    total_coloured = int(counts.sum())
    shares = {
        name: (float(counts[i]) / total_coloured if total_coloured else 0.0) for i, name in enumerate(colours)
    }
    # Largest blob of every colour that occurs, per frame: [colour][frame] -> (blob, area, centroid).
    blobs = {
        int(index): [_largest_blob(frame == index) for frame in labels] for index in np.flatnonzero(counts)
    }
    blob_scores = {index: sum(area for _, area, _ in per_frame) for index, per_frame in blobs.items()}

    centroids = np.full((num_frames, 2), np.nan)
    areas = np.zeros(num_frames)
    present = np.zeros(num_frames, dtype=bool)
    purities = np.zeros(num_frames)
    object_masks = np.zeros((num_frames, height, width), dtype=bool)
    colour: str | None = None
    shape: str | None = None
    shape_confidence = 0.0
    if blobs:
        colour_index = max(blob_scores, key=blob_scores.__getitem__)
        colour = colours[colour_index]
        calibration = shape_calibration(spec, config) if spec.shapes else None
        votes = np.zeros(len(spec.shapes))
        for frame_index, (blob, area, centroid) in enumerate(blobs[colour_index]):
            colour_mask = labels[frame_index] == colour_index
            # Everything of the object's colour is kept away from the camera's background points.
            object_masks[frame_index] = colour_mask
            if blob is None:
                continue
            purities[frame_index] = area / max(int(colour_mask.sum()), 1)
            if area < min_area:
                continue
            present[frame_index] = True
            areas[frame_index] = area
            centroids[frame_index] = centroid
            if calibration is not None and not _touches_border(blob):
                features = shape_features(blob, config)
                if features is not None:
                    votes[calibration.classify(features, config.shape_neighbours)] += 1
        if votes.sum() > 0:
            shape = spec.shapes[int(np.argmax(votes))]
            shape_confidence = float(votes.max() / votes.sum())

    present_fraction = float(present.mean())
    purity = float(purities[present].mean()) if present.any() else 0.0
    found = present_fraction >= config.min_present_fraction and purity >= config.min_purity
    path = _path_summary(centroids, present, side, num_frames, config)
    area_trend, area_ratio = _area_summary(areas, present, num_frames, config)
    camera, background_direction, camera_scale = _camera_summary(frames, object_masks, config)
    return VideoAnalysis(
        found=found,
        confidence=present_fraction * purity,
        colour=colour,
        shape=shape if found else None,
        shape_confidence=shape_confidence if found else 0.0,
        centroids=centroids,
        areas=areas,
        present=present,
        direction=path["direction"],
        path_kind=path["path_kind"],
        rotation=path["rotation"],
        velocity=path["velocity"],
        speed=path["speed"],
        travel=path["travel"],
        area_trend=area_trend,
        area_ratio=area_ratio,
        camera=camera,
        background_direction=background_direction,
        camera_scale=camera_scale,
        colour_shares=shares,
        frame_size=(height, width),
    )
