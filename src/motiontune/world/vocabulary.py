"""The motion world's vocabulary: palette colours, shape outlines and the eight screen directions.

These are definitions (what "red" or "a star" *is* in this world), shared by the generator that
draws samples and the analyser that reads them back without ground truth. Which of them a world
uses, and all tuning values, come from ``conf/base/parameters_world.yml`` (see ``WorldSpec``).

Coordinates are image coordinates: x to the right, y *down*, in pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# --------------------------------------------------------------------------- colours


@dataclass(frozen=True)
class PaletteColour:
    """One object colour.

    Attributes:
        name: the word used in captions ("red").
        rgb: the exact RGB the generator paints, 0-255.
        achromatic: True for white: it is told apart from the background by brightness, not hue.
    """

    name: str
    rgb: tuple[int, int, int]
    achromatic: bool = False

    @property
    def hue_degrees(self) -> float:
        """HSV hue in [0, 360) (0 for achromatic colours), as OpenCV computes it on float RGB."""
        pixel = np.array([[self.rgb]], dtype=np.float32) / 255.0
        return float(cv2.cvtColor(pixel, cv2.COLOR_RGB2HSV)[0, 0, 0])


# Fully saturated, full-value colours: chroma (max - min channel) is 255 for every hue, so the
# share of an anti-aliased edge pixel covered by the object is linear in its chroma. The default
# world uses the six 60-degree-spaced hues; orange, purple and white sit between them (or off the
# hue circle) and are available for worlds that want more colours at the price of separation.
PALETTE: dict[str, PaletteColour] = {
    colour.name: colour
    for colour in (
        PaletteColour("red", (255, 0, 0)),
        PaletteColour("orange", (255, 128, 0)),
        PaletteColour("yellow", (255, 255, 0)),
        PaletteColour("green", (0, 255, 0)),
        PaletteColour("cyan", (0, 255, 255)),
        PaletteColour("blue", (0, 0, 255)),
        PaletteColour("purple", (128, 0, 255)),
        PaletteColour("magenta", (255, 0, 255)),
        PaletteColour("white", (255, 255, 255), achromatic=True),
    )
}


def article_for(word: str) -> str:
    """English indefinite article for a noun phrase starting with ``word`` ("an orange ...")."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def noun_phrase(colour: str, shape: str) -> str:
    """How captions name an object: "a red circle", "an orange star"."""
    return f"{article_for(colour)} {colour} {shape}"


# --------------------------------------------------------------------------- shapes

# Inner/outer radius ratio of the five-pointed star; a definition of the star's look (0.5 keeps
# its arms at least ~3 px wide at the smallest default size, so they survive anti-aliasing).
STAR_INNER_RATIO = 0.5
# Segments used to describe the circle as a polygon when only the outline is needed (fill factor
# uses the exact pi/4).
_CIRCLE_SEGMENTS = 64


def _regular_outline(num_vertices: int, radius: float, start_angle: float) -> np.ndarray:
    """Vertices (N, 2) of a regular polygon centred on the origin, first vertex at ``start_angle``."""
    angles = start_angle + 2.0 * math.pi * np.arange(num_vertices) / num_vertices
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=-1)


def _star_outline(points: int, inner_ratio: float) -> np.ndarray:
    """Vertices (2 * points, 2) of a star of outer radius 0.5, one point straight up."""
    radii = np.where(np.arange(2 * points) % 2 == 0, 0.5, 0.5 * inner_ratio)
    angles = -math.pi / 2 + math.pi * np.arange(2 * points) / points
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=-1)


def _polygon_area(vertices: np.ndarray) -> float:
    """Shoelace area of a simple polygon (N, 2)."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def inward_miters(vertices: np.ndarray) -> np.ndarray:
    """Per-vertex displacement (N, 2) that moves every edge of a simple polygon inwards by 1.

    ``vertices + d * inward_miters(vertices)`` insets the polygon by ``d`` with mitred corners,
    for convex and reflex corners alike, while d is small against the edges. It only depends on
    the edge directions, so it is the same for every size and position of a shape.
    """
    x, y = vertices[:, 0], vertices[:, 1]
    orientation = np.sign(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    edges = np.roll(vertices, -1, axis=0) - vertices
    edges = edges / np.linalg.norm(edges, axis=1, keepdims=True)
    # Rotating the edge direction by +90 degrees points inwards for a positive shoelace area.
    normals = orientation * np.stack([-edges[:, 1], edges[:, 0]], axis=-1)
    previous = np.roll(normals, 1, axis=0)
    # Along the bisector of the two edge normals, far enough to have a unit projection on each.
    return (previous + normals) / (1.0 + np.sum(previous * normals, axis=1, keepdims=True))


@dataclass(frozen=True)
class ShapeDefinition:
    """An object shape of unit size, centred on its area centroid.

    ``size`` everywhere in the world means the shape's extent: the circle's diameter, the square's
    side, the diameter of the circle through the triangle's or star's outer vertices. The area of
    a drawn shape is ``fill_factor * size**2`` and its area centroid is the drawn centre.

    Attributes:
        name: the word used in captions.
        outline: (N, 2) polygon vertices for size 1 (None for the circle, drawn exactly).
        fill_factor: area / size**2.
        miters: (N, 2) ``inward_miters`` of the outline (None for the circle).
    """

    name: str
    outline: np.ndarray | None
    fill_factor: float
    miters: np.ndarray | None = None

    def polygon(self, centre: tuple[float, float], size: float) -> np.ndarray:
        """Vertices (N, 2) float64 of this shape drawn at ``centre`` (x, y) with extent ``size`` px."""
        outline = self.outline
        if outline is None:
            outline = _regular_outline(_CIRCLE_SEGMENTS, 0.5, 0.0)
        return outline * size + np.asarray(centre, dtype=np.float64)


def _polygon_shape(name: str, outline: np.ndarray) -> ShapeDefinition:
    return ShapeDefinition(
        name=name, outline=outline, fill_factor=_polygon_area(outline), miters=inward_miters(outline)
    )


SHAPES: dict[str, ShapeDefinition] = {
    shape.name: shape
    for shape in (
        ShapeDefinition("circle", None, math.pi / 4.0),
        _polygon_shape("square", np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])),
        # Equilateral, pointing up; its circumcentre is its centroid.
        _polygon_shape("triangle", _regular_outline(3, 0.5, -math.pi / 2)),
        _polygon_shape("star", _star_outline(5, STAR_INNER_RATIO)),
    )
}

# --------------------------------------------------------------------------- directions

# Ordered by image-space angle atan2(dy, dx) in steps of 45 degrees, starting at "right" (y down,
# so +90 degrees is "down"); classify an angle with DIRECTION_NAMES[round(angle / 45) % 8].
DIRECTION_NAMES: tuple[str, ...] = (
    "right",
    "down_right",
    "down",
    "down_left",
    "left",
    "up_left",
    "up",
    "up_right",
)
AXIS_DIRECTIONS: tuple[str, ...] = ("right", "down", "left", "up")
STATIC = "static"

# Caption words for each direction.
DIRECTION_WORDS: dict[str, str] = {
    "right": "right",
    "left": "left",
    "up": "up",
    "down": "down",
    "up_right": "up and right",
    "up_left": "up and left",
    "down_right": "down and right",
    "down_left": "down and left",
}

# Caption adverb of each speed name: the medium speed is the unmarked one ("moving right").
SPEED_ADVERBS: dict[str, str] = {"slow": "slowly", "medium": "", "fast": "quickly"}


def direction_vector(name: str) -> np.ndarray:
    """Unit vector (2,) (dx, dy) in image coordinates for a direction name."""
    angle = math.radians(45.0 * DIRECTION_NAMES.index(name))
    return np.array([math.cos(angle), math.sin(angle)])


def opposite_direction(name: str) -> str:
    """The direction pointing the other way ("left" -> "right")."""
    return DIRECTION_NAMES[(DIRECTION_NAMES.index(name) + 4) % len(DIRECTION_NAMES)]


def direction_of_vector(vector: np.ndarray) -> str:
    """Nearest of the eight direction names for a non-zero (dx, dy) vector."""
    angle = math.degrees(math.atan2(float(vector[1]), float(vector[0])))
    return DIRECTION_NAMES[round(angle / 45.0) % len(DIRECTION_NAMES)]


def check_names(kind: str, names: tuple[str, ...] | list[str], known: dict | tuple) -> None:
    """Raise ValueError naming ``kind`` and the known names when ``names`` has an unknown one."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; known: {sorted(known)}")
