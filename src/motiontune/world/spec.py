"""What a motion world contains and how it is drawn: ``WorldSpec``, built from ``world`` parameters.

Every length is a fraction of the shorter frame side, so one configuration works from 32x32 to
64x64 (and beyond); every default below is the documented default of
``conf/base/parameters_world.yml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from motiontune.sections import build_section
from motiontune.world.motions import MOTION_FAMILIES, infeasible_motions
from motiontune.world.vocabulary import (
    AXIS_DIRECTIONS,
    DIRECTION_NAMES,
    PALETTE,
    SHAPES,
    SPEED_ADVERBS,
    check_names,
)

DEFAULT_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
# Six hues 60 degrees apart: the best-separated set (orange, purple, white are opt-in).
DEFAULT_COLOURS: tuple[str, ...] = ("red", "yellow", "green", "cyan", "blue", "magenta")
BACKGROUND_KINDS: tuple[str, ...] = ("plain", "gradient", "texture")
DEFAULT_FAMILIES: tuple[str, ...] = (
    "translate",
    "circle_clockwise",
    "circle_counterclockwise",
    "zigzag",
    "grow",
    "shrink",
    "pan",
    "zoom_in",
    "zoom_out",
)
DEFAULT_HELD_OUT: tuple[str, ...] = ("zigzag", "circle_counterclockwise")
SPLITS: tuple[str, ...] = ("train", "heldout", "all")

# Smallest frames and clips the world is meant for: below these an object of the default size
# range is a handful of pixels and its shape cannot be read back.
MIN_FRAME_SIDE = 32
MIN_FRAMES = 4


@dataclass(frozen=True)
class ObjectSettings:
    """How big objects are.

    Attributes:
        size_range: (min, max) object size (circle diameter, square side, outer diameter of
            triangle and star) as a fraction of the shorter frame side; 0.22-0.34 is 14-22 px at 64.
        margin: smallest gap between the object and the frame border for object motions, as a
            fraction of the shorter side, so the object stays whole in every frame.
    """

    size_range: tuple[float, float] = (0.22, 0.34)
    margin: float = 0.04


@dataclass(frozen=True)
class MotionSettings:
    """Parameters of the motion families (fractions of the shorter frame side).

    Attributes:
        directions: directions of ``translate`` and ``pan``.
        zigzag_directions: overall directions of ``zigzag``.
        speeds: speed name -> distance travelled over the whole clip; the clip is the same
            duration whatever its frame count, so per-frame steps shrink with more frames.
        circle_radius: radius of the ``circle_*`` path; the object goes once round per clip.
        zigzag_speed: speed name of the zigzag's overall progress.
        zigzag_amplitude: sideways excursion of the zigzag on each side of its line.
        zigzag_cycles: full left-right swings per clip.
        scale_factor: last/first object size for ``grow`` (first/last for ``shrink``).
        zoom_factor: scale of the scene at the zoomed-in end of ``zoom_in``/``zoom_out``.
    """

    directions: tuple[str, ...] = DIRECTION_NAMES
    zigzag_directions: tuple[str, ...] = AXIS_DIRECTIONS
    speeds: Mapping[str, float] = field(default_factory=lambda: {"slow": 0.2, "medium": 0.35, "fast": 0.5})
    circle_radius: float = 0.18
    zigzag_speed: str = "medium"
    zigzag_amplitude: float = 0.1
    zigzag_cycles: int = 2
    scale_factor: float = 1.8
    zoom_factor: float = 1.6


@dataclass(frozen=True)
class BackgroundSettings:
    """How backgrounds look; all of them stay far from the object colours.

    Attributes:
        value_range: (min, max) of every background channel, 0-255. The max stays well below the
            objects' 255 so a white object is still brighter than any background.
        max_chroma: largest channel spread (max - min) of a background pixel, 0-255; objects have
            255, so colour segmentation by chroma is unambiguous.
        gradient_min_gap: smallest brightness difference between the two tones of a gradient.
        texture_contrast: standard deviation of the texture's brightness, 0-255.
        texture_scale: correlation length of the texture in pixels (the size of its blobs); a few
            pixels gives point trackers something to follow under pans and zooms.
    """

    value_range: tuple[float, float] = (60.0, 170.0)
    max_chroma: float = 30.0
    gradient_min_gap: float = 40.0
    texture_contrast: float = 22.0
    texture_scale: float = 4.0


@dataclass(frozen=True)
class WorldSpec:
    """A motion world: clip geometry, vocabulary in use, motion families and the seed.

    Attributes:
        num_frames: frames per clip (tested 8-16).
        height, width: frame size in pixels (tested 32-64).
        shapes, colours, backgrounds: the vocabulary samples draw from.
        families: motion families in the world (see ``motiontune.world.motions``).
        held_out_families: families that never appear in ``split="train"``; they are benchmark
            references only.
        seed: default seed of ``sample_world``.
        supersample: the object is rasterised at this multiple of the frame resolution and
            box-filtered down, so edge pixels carry their exact coverage (true sub-pixel motion).
    """

    num_frames: int = 8
    height: int = 64
    width: int = 64
    shapes: tuple[str, ...] = DEFAULT_SHAPES
    colours: tuple[str, ...] = DEFAULT_COLOURS
    backgrounds: tuple[str, ...] = BACKGROUND_KINDS
    families: tuple[str, ...] = DEFAULT_FAMILIES
    held_out_families: tuple[str, ...] = DEFAULT_HELD_OUT
    seed: int = 0
    supersample: int = 4
    object: ObjectSettings = field(default_factory=ObjectSettings)
    motion: MotionSettings = field(default_factory=MotionSettings)
    background: BackgroundSettings = field(default_factory=BackgroundSettings)

    def __post_init__(self) -> None:
        problems = spec_problems(self)
        if problems:
            raise ValueError("invalid world spec:\n  " + "\n  ".join(problems))

    @property
    def side(self) -> int:
        """The shorter frame side in pixels: the unit of every fractional length."""
        return min(self.height, self.width)

    def families_for(self, split: str) -> tuple[str, ...]:
        """Families a split draws from: train excludes the held-out ones, heldout is only them."""
        if split == "train":
            return tuple(name for name in self.families if name not in self.held_out_families)
        if split == "heldout":
            return tuple(name for name in self.families if name in self.held_out_families)
        if split == "all":
            return self.families
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> WorldSpec:
        """Build from the ``world`` section of the parameters (unknown keys are an error)."""
        params = dict(params)
        params.pop("analyser", None)  # the analyser's own section (AnalyserConfig)
        params.pop("scoring", None)
        return build_section(cls, params, "world")


def spec_problems(spec: WorldSpec) -> list[str]:
    """Every problem with a spec, one line each (empty when it is valid)."""
    problems: list[str] = []

    def check(kind: str, names: tuple[str, ...], known: Any, allow_empty: bool = False) -> None:
        try:
            check_names(kind, names, known)
        except ValueError as error:
            problems.append(str(error))
        if not names and not allow_empty:
            problems.append(f"{kind}: needs at least one")

    if not isinstance(spec.num_frames, int) or spec.num_frames < MIN_FRAMES:
        problems.append(f"num_frames: must be an integer >= {MIN_FRAMES}, got {spec.num_frames!r}")
    for key in ("height", "width"):
        value = getattr(spec, key)
        if not isinstance(value, int) or value < MIN_FRAME_SIDE:
            problems.append(f"{key}: must be an integer >= {MIN_FRAME_SIDE}, got {value!r}")
    if not isinstance(spec.supersample, int) or spec.supersample < 1:
        problems.append(f"supersample: must be a positive integer, got {spec.supersample!r}")
    check("shape", spec.shapes, SHAPES)
    check("colour", spec.colours, PALETTE)
    check("background", spec.backgrounds, BACKGROUND_KINDS)
    check("family", spec.families, MOTION_FAMILIES)
    check("held-out family", spec.held_out_families, spec.families, allow_empty=True)
    check("direction", spec.motion.directions, DIRECTION_NAMES)
    check("zigzag direction", spec.motion.zigzag_directions, DIRECTION_NAMES)
    check("speed", tuple(spec.motion.speeds), SPEED_ADVERBS)
    if any(not 0.0 < float(travel) < 1.0 for travel in spec.motion.speeds.values()):
        problems.append(f"motion.speeds: travels must be in (0, 1), got {dict(spec.motion.speeds)}")
    if spec.motion.zigzag_speed not in spec.motion.speeds:
        problems.append(
            f"motion.zigzag_speed: {spec.motion.zigzag_speed!r} is not one of {sorted(spec.motion.speeds)}"
        )
    low, high = spec.object.size_range
    if not 0.0 < low <= high < 1.0:
        problems.append(f"object.size_range: need 0 < min <= max < 1, got {spec.object.size_range}")
    vmin, vmax = spec.background.value_range
    if not 0.0 <= vmin < vmax <= 255.0:
        problems.append(
            f"background.value_range: need 0 <= min < max <= 255, got {spec.background.value_range}"
        )
    if vmax - vmin < spec.background.gradient_min_gap:
        problems.append("background.gradient_min_gap: larger than the value range allows")
    if problems:
        return problems
    # Geometry: every family, every discrete parameter choice, the largest object must fit.
    problems += infeasible_motions(spec)
    if not spec.families_for("train"):
        problems.append("held_out_families: holds out every family, nothing is left to train on")
    return problems
