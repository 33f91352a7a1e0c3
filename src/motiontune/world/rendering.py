"""Draw world clips: low-chroma backgrounds and an exactly anti-aliased object over them.

The object is rasterised at ``supersample`` times the frame resolution and box-filtered down, so
each pixel's alpha is the share of it the shape covers: centroid and area of the drawn object
match the plan to a fraction of a pixel, and slow motions move smoothly by sub-pixel steps.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from motiontune.world.motions import MotionPlan
from motiontune.world.spec import BackgroundSettings
from motiontune.world.vocabulary import ShapeDefinition

# Fractional bits of the fixed-point coordinates handed to OpenCV's polygon fill (1/16 px).
_SHIFT_BITS = 4
_FIXED_POINT = float(1 << _SHIFT_BITS)
# OpenCV's non-anti-aliased fill also paints every fine pixel its outline passes through, which
# grows a shape by about half a fine pixel on every side (measured: +6% area for a 14 px triangle at
# supersample 4). Insetting the outline by that much makes the coverage sum to the true area
# (measured: within 2%, centroid within 0.13 px, for all shapes from 8 to 22 px).
_FILL_GROWTH_FINE_PX = 0.5
# Hues of the background tints are drawn on this many evenly spaced points of the colour wheel.
_TINT_HUE_STEPS = 360


def _tint(rng: np.random.Generator, max_chroma: float) -> np.ndarray:
    """An RGB offset (3,) with channel spread (chroma) in [0, max_chroma] and a random hue.

    A fully saturated hue p in [0, 1]^3 (max 1, min 0) centred on 0.5 and scaled by the chroma
    gives max - min = chroma exactly, whatever the hue.
    """
    hue = rng.integers(0, _TINT_HUE_STEPS) / _TINT_HUE_STEPS * 180.0  # OpenCV 8-bit hue scale
    pure = cv2.cvtColor(np.array([[[hue, 255, 255]]], dtype=np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return rng.uniform(0.0, max_chroma) * (pure.astype(np.float64) / 255.0 - 0.5)


def make_background(
    kind: str,
    canvas_size: tuple[int, int],
    settings: BackgroundSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """A background canvas (h, w, 3) float32 in 0-255.

    Kinds: "plain" (one low-chroma grey), "gradient" (linear blend of two such tones at a random
    angle, at least ``gradient_min_gap`` apart in brightness), "texture" (smooth random blobs of
    ``texture_scale`` px around a tinted grey). Every channel is clipped to ``value_range``, which
    can only lower the chroma, so no background pixel gets near an object colour.
    """
    height, width = canvas_size
    low, high = settings.value_range
    if kind == "plain":
        level = rng.uniform(low, high)
        canvas = np.broadcast_to(level + _tint(rng, settings.max_chroma), (height, width, 3))
    elif kind == "gradient":
        first = rng.uniform(low, high - settings.gradient_min_gap)
        second = rng.uniform(first + settings.gradient_min_gap, high)
        if rng.random() < 0.5:
            first, second = second, first
        tones = [level + _tint(rng, settings.max_chroma) for level in (first, second)]
        angle = rng.uniform(0.0, 2.0 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        along = xs * math.cos(angle) + ys * math.sin(angle)
        ramp = (along - along.min()) / max(float(np.ptp(along)), 1.0)
        canvas = (1.0 - ramp)[..., None] * tones[0] + ramp[..., None] * tones[1]
    elif kind == "texture":
        # Keep the blobs inside the value range: centre the base level with room for ~2 sigma.
        room = min(2.0 * settings.texture_contrast, (high - low) / 2.0)
        level = rng.uniform(low + room, high - room)
        coarse_shape = (
            max(2, math.ceil(height / settings.texture_scale)),
            max(2, math.ceil(width / settings.texture_scale)),
        )
        coarse = rng.standard_normal(coarse_shape)
        blobs = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        blobs = (blobs - blobs.mean()) / max(float(blobs.std()), 1e-6)
        canvas = (level + settings.texture_contrast * blobs)[..., None] + _tint(rng, settings.max_chroma)
    else:
        raise ValueError(f"unknown background kind {kind!r}")
    return np.clip(canvas, low, high).astype(np.float32)


def _object_box(
    centre: tuple[float, float], size: float, frame_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Pixel box (top, bottom, left, right), exclusive ends, that holds the whole object.

    Every shape lies within size / 2 of its centre on both axes; one pixel of slack covers the
    pixels its edges only partly cover.
    """
    height, width = frame_size
    half = size / 2.0 + 1.0
    left = max(math.floor(centre[0] - half), 0)
    right = min(math.ceil(centre[0] + half) + 1, width)
    top = max(math.floor(centre[1] - half), 0)
    bottom = min(math.ceil(centre[1] + half) + 1, height)
    return top, max(bottom, top), left, max(right, left)


def _box_coverage(
    shape: ShapeDefinition,
    centre: tuple[float, float],
    size: float,
    box: tuple[int, int, int, int],
    supersample: int,
) -> np.ndarray:
    """Coverage (box_h, box_w) float32 of the object inside a pixel box of the frame."""
    top, bottom, left, right = box
    fine = np.zeros(((bottom - top) * supersample, (right - left) * supersample), dtype=np.uint8)
    origin = np.array([left, top], dtype=np.float64)

    def to_fine(points: np.ndarray) -> np.ndarray:
        # Fine pixel k is centred on box coordinate (k + 0.5) / s - 0.5, so x -> (x + 0.5) s - 0.5.
        return (points - origin + 0.5) * supersample - 0.5

    def fixed_point(points: np.ndarray) -> np.ndarray:
        return np.round(points * _FIXED_POINT).astype(np.int32)

    if shape.outline is None:
        fine_centre = fixed_point(to_fine(np.asarray(centre, dtype=np.float64)))
        radius = round((size / 2.0 * supersample - _FILL_GROWTH_FINE_PX) * _FIXED_POINT)
        cv2.circle(fine, (int(fine_centre[0]), int(fine_centre[1])), radius, 255, -1, cv2.LINE_8, _SHIFT_BITS)
    else:
        # Fine coordinates are a uniform scaling of frame ones, so the unit miters still apply.
        polygon = fixed_point(to_fine(shape.polygon(centre, size)) + _FILL_GROWTH_FINE_PX * shape.miters)
        cv2.fillPoly(fine, [polygon.reshape(-1, 1, 2)], 255, cv2.LINE_8, _SHIFT_BITS)
    coverage = cv2.resize(fine, (right - left, bottom - top), interpolation=cv2.INTER_AREA)
    return coverage.astype(np.float32) / 255.0


def rasterise_coverage(
    shape: ShapeDefinition,
    centre: tuple[float, float],
    size: float,
    frame_size: tuple[int, int],
    supersample: int,
) -> np.ndarray:
    """Share of each pixel covered by ``shape`` at ``centre`` (x, y) with extent ``size`` px.

    Pixel (row i, column j) is the unit square centred on (x=j, y=i) (OpenCV's convention). Only
    the object's bounding box is rasterised, at ``supersample`` x the resolution.

    Returns:
        (H, W) float32 coverage in [0, 1].
    """
    coverage = np.zeros(frame_size, dtype=np.float32)
    box = _object_box(centre, size, frame_size)
    top, bottom, left, right = box
    if bottom > top and right > left:
        coverage[top:bottom, left:right] = _box_coverage(shape, centre, size, box, supersample)
    return coverage


def render_clip(
    plan: MotionPlan,
    canvas: np.ndarray,
    shape: ShapeDefinition,
    rgb: tuple[int, int, int],
    frame_size: tuple[int, int],
    supersample: int,
) -> np.ndarray:
    """Composite the object over the (moving) background in every frame of ``plan``.

    Args:
        plan: per-frame centres, sizes and camera transforms.
        canvas: (h, w, 3) float32 background canvas of ``plan.canvas_size``.
        shape: the object's shape.
        rgb: the object's colour.
        frame_size: (H, W) of the output frames.
        supersample: rasterisation factor (see ``rasterise_coverage``).

    Returns:
        (F, H, W, 3) uint8 RGB frames.
    """
    height, width = frame_size
    colour = np.asarray(rgb, dtype=np.float32)
    frames = np.empty((len(plan.centres), height, width, 3), dtype=np.uint8)
    for index, (centre, size) in enumerate(zip(plan.centres, plan.sizes, strict=True)):
        if plan.camera_transforms is None:
            background = canvas[:height, :width]
        else:
            background = cv2.warpAffine(
                canvas,
                plan.camera_transforms[index],
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            )
        point = (float(centre[0]), float(centre[1]))
        box = _object_box(point, float(size), frame_size)
        top, bottom, left, right = box
        frame = background.copy()
        if bottom > top and right > left:
            # Only the object's box changes: composite there.
            alpha = _box_coverage(shape, point, float(size), box, supersample)[..., None]
            frame[top:bottom, left:right] = frame[top:bottom, left:right] * (1.0 - alpha) + colour * alpha
        frames[index] = np.clip(np.rint(frame), 0, 255)
    return frames
