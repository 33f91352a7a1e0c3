"""Helpers shared by the motion-world tests (measurements taken straight from drawn pixels)."""

from __future__ import annotations

import cv2
import numpy as np

# Pixels around the object used to estimate the local background tint (px rings).
_INNER_RING = 2
_OUTER_RING = 5
# Chroma (0-255) well above any background (<= 30) and below the object's 255.
_OBJECT_CHROMA = 128


def soft_coverage(frame: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Per-pixel share (H, W) of a chromatic object of colour ``rgb`` in an RGB frame.

    A pixel is alpha * object + (1 - alpha) * background. Backgrounds are grey plus a constant
    tint, so in the chroma plane (RGB minus its mean) the grey texture vanishes and alpha is the
    projection on (object - local background). The local background is the median over a ring
    around the object's thresholded mask; pixels outside the mask's neighbourhood get 0.
    """
    pixels = frame.astype(np.float64)
    chroma_plane = pixels - pixels.mean(axis=-1, keepdims=True)
    colour = np.asarray(rgb, dtype=np.float64)
    colour_plane = colour - colour.mean()
    core = (frame.max(axis=-1).astype(int) - frame.min(axis=-1)) >= _OBJECT_CHROMA
    core &= (chroma_plane @ colour_plane) > 0  # the object's hue, not another colour
    near = cv2.dilate(core.astype(np.uint8), np.ones((2 * _INNER_RING + 1,) * 2, np.uint8)) > 0
    ring = cv2.dilate(core.astype(np.uint8), np.ones((2 * _OUTER_RING + 1,) * 2, np.uint8)) > 0
    ring &= ~near
    background = np.median(chroma_plane[ring], axis=0) if ring.any() else np.zeros(3)
    direction = colour_plane - background
    alpha = ((chroma_plane - background) @ direction) / float(direction @ direction)
    return np.where(near, np.clip(alpha, 0.0, 1.0), 0.0)


def coverage_centroid(coverage: np.ndarray) -> np.ndarray:
    """Coverage-weighted centroid (2,) x, y of an (H, W) map."""
    rows, cols = np.mgrid[0 : coverage.shape[0], 0 : coverage.shape[1]]
    total = coverage.sum()
    return np.array([(coverage * cols).sum() / total, (coverage * rows).sum() / total])
