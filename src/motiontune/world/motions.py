"""Motion families of the world: each turns discrete parameters into a per-frame plan.

A plan says where the object is on screen in every frame, how big it is, and how the background
canvas maps to the screen (camera motion). The registry ``MOTION_FAMILIES`` maps family names to
``MotionFamily`` records; ``register_motion_family`` adds new ones.

Object motions keep the background still and move the object, always whole inside the frame
(``ObjectSettings.margin`` from the border). Camera motions move the view over a textured canvas:
in a pan the object is painted on the canvas, so object and texture move together on screen, in
the direction *opposite* to the pan ("camera panning left": the scene slides right); a zoom scales
the canvas about the object, which stays put and grows (zoom in) or shrinks (zoom out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from motiontune.errors import UserError
from motiontune.world.vocabulary import (
    DIRECTION_WORDS,
    SPEED_ADVERBS,
    STATIC,
    direction_vector,
    opposite_direction,
)

if TYPE_CHECKING:
    from motiontune.world.spec import WorldSpec

ParamValue = str | float
Params = Mapping[str, ParamValue]

# Extra canvas pixels around a panned view, so bilinear sampling never reads past the canvas.
_CANVAS_PAD = 2


class WorldGeometryError(ValueError, UserError):
    """The requested motion cannot keep the object inside the frame."""


@dataclass(frozen=True)
class MotionTruth:
    """What the analyser should read from a clip of this motion (ground truth, screen terms).

    Attributes:
        family: motion family name.
        params: the family's parameters (direction, speed, travel_px, ...).
        camera: "static", "pan", "zoom_in" or "zoom_out".
        screen_direction: overall direction the object moves on screen (one of the eight
            names), "static" when its centre stays put, None for a closed path (circle).
        path_kind: "line", "curve" or "static".
        rotation: "clockwise"/"counterclockwise" (as seen on screen) for circles, else None.
        area_trend: "grow", "shrink" or "steady".
    """

    family: str
    params: Params
    camera: str
    screen_direction: str | None
    path_kind: str
    rotation: str | None
    area_trend: str


@dataclass(frozen=True)
class MotionPlan:
    """Per-frame layout of one clip.

    Attributes:
        centres: (F, 2) float64 object area centroid x, y on screen, px.
        sizes: (F,) float64 object size on screen, px (see ``ShapeDefinition``).
        camera_transforms: (F, 2, 3) affine maps canvas -> screen (as ``cv2.warpAffine`` takes
            them), or None when the background is still and the canvas is the frame.
        canvas_size: (height, width) of the background canvas.
        truth: ground truth in screen terms.
    """

    centres: np.ndarray
    sizes: np.ndarray
    camera_transforms: np.ndarray | None
    canvas_size: tuple[int, int]
    truth: MotionTruth


PlanFunction = Callable[["WorldSpec", Params, float, np.random.Generator], MotionPlan]


@dataclass(frozen=True)
class MotionFamily:
    """A registered motion family.

    Attributes:
        name: registry key, used in conf (``families``, ``held_out_families``).
        camera: True when the camera moves (always drawn over a textured background).
        param_options: spec -> every discrete parameter combination (sampling picks one).
        plan: (spec, params, base_size_px, rng) -> MotionPlan; ``base_size_px`` is drawn from
            the object size range; random placement comes from ``rng``.
        caption: (params, noun phrase such as "a red circle") -> caption.
    """

    name: str
    camera: bool
    param_options: Callable[[WorldSpec], list[dict[str, ParamValue]]]
    plan: PlanFunction
    caption: Callable[[Params, str], str]
    description: str = field(default="")


MOTION_FAMILIES: dict[str, MotionFamily] = {}


def matching_param_options(spec: WorldSpec, family: str, params: Params) -> list[dict[str, ParamValue]]:
    """The family's parameter combinations that agree with every key of ``params`` (e.g. ``{"speed": "fast"}``)."""
    return [dict(option) for option in MOTION_FAMILIES[family].param_options(spec)
            if all(option.get(key) == value for key, value in params.items())]


def register_motion_family(family: MotionFamily) -> MotionFamily:
    """Add ``family`` to ``MOTION_FAMILIES`` (replacing one of the same name) and return it."""
    MOTION_FAMILIES[family.name] = family
    return family


# --------------------------------------------------------------------------- helpers


def _times(spec: WorldSpec) -> np.ndarray:
    """Clip time of each frame in [0, 1], (F,)."""
    return np.linspace(0.0, 1.0, spec.num_frames)


def _place(spec: WorldSpec, path: np.ndarray, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift a relative path (F, 2) to a random spot where the object stays inside every frame.

    The object's half extent is size / 2 on both axes for every shape (see ShapeDefinition), so
    frame t needs margin + size_t / 2 <= x_t <= width - margin - size_t / 2 (same for y).
    """
    margin = spec.object.margin * spec.side
    half = sizes[:, None] / 2.0 + margin
    limits = np.array([spec.width, spec.height], dtype=np.float64)
    low = np.max(half - path, axis=0)
    high = np.min(limits - half - path, axis=0)
    if np.any(low > high):
        raise WorldGeometryError(
            f"an object of size {sizes.max():.1f} px on a path spanning "
            f"{np.ptp(path, axis=0).round(1).tolist()} px does not fit a "
            f"{spec.width}x{spec.height} frame with a {margin:.1f} px margin"
        )
    offset = low + rng.random(2) * (high - low)
    return path + offset


def _still_plan(spec: WorldSpec, centres: np.ndarray, sizes: np.ndarray, truth: MotionTruth) -> MotionPlan:
    return MotionPlan(
        centres=centres,
        sizes=sizes,
        camera_transforms=None,
        canvas_size=(spec.height, spec.width),
        truth=truth,
    )


def _geometric(start: float, end: float, times: np.ndarray) -> np.ndarray:
    """Values from ``start`` to ``end`` with a constant ratio per frame (looks uniform in scale)."""
    return start * (end / start) ** times


def _speed_phrase(params: Params) -> str:
    adverb = SPEED_ADVERBS[str(params["speed"])]
    return f"{adverb} " if adverb else ""


def _direction_speed_options(spec: WorldSpec) -> list[dict[str, ParamValue]]:
    return [
        {"direction": direction, "speed": speed}
        for direction in spec.motion.directions
        for speed in spec.motion.speeds
    ]


def _single_option(spec: WorldSpec) -> list[dict[str, ParamValue]]:
    return [{}]


# --------------------------------------------------------------------------- object motions


def _plan_translate(
    spec: WorldSpec, params: Params, base_size: float, rng: np.random.Generator
) -> MotionPlan:
    direction = str(params["direction"])
    travel = spec.motion.speeds[str(params["speed"])] * spec.side
    path = _times(spec)[:, None] * travel * direction_vector(direction)
    sizes = np.full(spec.num_frames, base_size)
    truth = MotionTruth(
        family="translate",
        params={**params, "travel_px": travel},
        camera="static",
        screen_direction=direction,
        path_kind="line",
        rotation=None,
        area_trend="steady",
    )
    return _still_plan(spec, _place(spec, path, sizes, rng), sizes, truth)


def _circle_planner(rotation: str) -> PlanFunction:
    # On screen (y down) increasing angle turns clockwise.
    sign = 1.0 if rotation == "clockwise" else -1.0

    def plan(spec: WorldSpec, params: Params, base_size: float, rng: np.random.Generator) -> MotionPlan:
        radius = spec.motion.circle_radius * spec.side
        start_angle = rng.uniform(0.0, 2.0 * math.pi)
        # One full turn per clip, the last frame one step short of closing the loop, so a looping
        # playback continues smoothly.
        angles = start_angle + sign * 2.0 * math.pi * np.arange(spec.num_frames) / spec.num_frames
        path = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        sizes = np.full(spec.num_frames, base_size)
        # Place the circle's centre so the whole circle fits, whatever the start angle.
        full_circle = radius * np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        centre = _place(spec, full_circle, np.full(4, base_size), rng) - full_circle
        truth = MotionTruth(
            family=f"circle_{rotation}",
            params={**params, "radius_px": radius, "start_angle": start_angle},
            camera="static",
            screen_direction=None,
            path_kind="curve",
            rotation=rotation,
            area_trend="steady",
        )
        return _still_plan(spec, path + centre[0], sizes, truth)

    return plan


def _triangle_wave(phase: np.ndarray) -> np.ndarray:
    """Triangle wave of period 1: 0, 1, 0, -1 at phases 0, 1/4, 1/2, 3/4."""
    return 2.0 / math.pi * np.arcsin(np.sin(2.0 * math.pi * phase))


def _plan_zigzag(spec: WorldSpec, params: Params, base_size: float, rng: np.random.Generator) -> MotionPlan:
    direction = str(params["direction"])
    forward = direction_vector(direction)
    sideways = np.array([-forward[1], forward[0]])
    travel = spec.motion.speeds[spec.motion.zigzag_speed] * spec.side
    amplitude = spec.motion.zigzag_amplitude * spec.side
    # Period num_frames / cycles frames: with 8 frames and 2 cycles the offsets are
    # 0, +A, 0, -A, 0, +A, 0, -A, a sharp zig every frame.
    phase = spec.motion.zigzag_cycles * np.arange(spec.num_frames) / spec.num_frames
    path = _times(spec)[:, None] * travel * forward + _triangle_wave(phase)[:, None] * amplitude * sideways
    sizes = np.full(spec.num_frames, base_size)
    truth = MotionTruth(
        family="zigzag",
        params={**params, "travel_px": travel, "amplitude_px": amplitude},
        camera="static",
        screen_direction=direction,
        path_kind="curve",
        rotation=None,
        area_trend="steady",
    )
    return _still_plan(spec, _place(spec, path, sizes, rng), sizes, truth)


def _scale_planner(trend: str) -> PlanFunction:
    def plan(spec: WorldSpec, params: Params, base_size: float, rng: np.random.Generator) -> MotionPlan:
        # The drawn size range is centred (geometrically) on base_size.
        root = math.sqrt(spec.motion.scale_factor)
        small, large = base_size / root, base_size * root
        start, end = (small, large) if trend == "grow" else (large, small)
        sizes = _geometric(start, end, _times(spec))
        truth = MotionTruth(
            family=trend,
            params={**params, "start_size_px": start, "end_size_px": end},
            camera="static",
            screen_direction=STATIC,
            path_kind="static",
            rotation=None,
            area_trend=trend,
        )
        centres = _place(spec, np.zeros((spec.num_frames, 2)), sizes, rng)
        return _still_plan(spec, centres, sizes, truth)

    return plan


# --------------------------------------------------------------------------- camera motions


def _plan_pan(spec: WorldSpec, params: Params, base_size: float, rng: np.random.Generator) -> MotionPlan:
    pan_direction = str(params["direction"])
    screen_direction = opposite_direction(pan_direction)
    travel = spec.motion.speeds[str(params["speed"])] * spec.side
    displacement = _times(spec)[:, None] * travel * direction_vector(screen_direction)
    sizes = np.full(spec.num_frames, base_size)
    centres = _place(spec, displacement, sizes, rng)
    # Canvas -> screen is a translation by (displacement - its per-axis maximum), always <= 0,
    # so the canvas only needs to be larger than the frame by the span of the displacement.
    shift = displacement - displacement.max(axis=0)
    span = np.ceil(np.ptp(displacement, axis=0)).astype(int) + _CANVAS_PAD
    transforms = np.zeros((spec.num_frames, 2, 3))
    transforms[:, 0, 0] = transforms[:, 1, 1] = 1.0
    transforms[:, :, 2] = shift
    truth = MotionTruth(
        family="pan",
        params={**params, "travel_px": travel},
        camera="pan",
        screen_direction=screen_direction,
        path_kind="line",
        rotation=None,
        area_trend="steady",
    )
    return MotionPlan(
        centres=centres,
        sizes=sizes,
        camera_transforms=transforms,
        canvas_size=(spec.height + int(span[1]), spec.width + int(span[0])),
        truth=truth,
    )


def _zoom_planner(kind: str) -> PlanFunction:
    def plan(spec: WorldSpec, params: Params, base_size: float, rng: np.random.Generator) -> MotionPlan:
        factor = spec.motion.zoom_factor
        scales = _geometric(1.0, factor, _times(spec))
        if kind == "zoom_out":
            scales = scales[::-1]
        # Scales stay >= 1, so a canvas the size of the frame always covers the view.
        sizes = base_size / math.sqrt(factor) * scales
        centres = _place(spec, np.zeros((spec.num_frames, 2)), sizes, rng)
        centre = centres[0]
        transforms = np.zeros((spec.num_frames, 2, 3))
        transforms[:, 0, 0] = transforms[:, 1, 1] = scales
        transforms[:, :, 2] = (1.0 - scales)[:, None] * centre
        truth = MotionTruth(
            family=kind,
            params={**params, "zoom_factor": factor},
            camera=kind,
            screen_direction=STATIC,
            path_kind="static",
            rotation=None,
            area_trend="grow" if kind == "zoom_in" else "shrink",
        )
        return MotionPlan(
            centres=centres,
            sizes=sizes,
            camera_transforms=transforms,
            canvas_size=(spec.height, spec.width),
            truth=truth,
        )

    return plan


# --------------------------------------------------------------------------- registry

register_motion_family(
    MotionFamily(
        name="translate",
        camera=False,
        param_options=_direction_speed_options,
        plan=_plan_translate,
        caption=lambda p, noun: f"{noun} {_speed_phrase(p)}moving {DIRECTION_WORDS[str(p['direction'])]}",
        description="straight line in one of the directions at one of the speeds",
    )
)
for _rotation in ("clockwise", "counterclockwise"):
    register_motion_family(
        MotionFamily(
            name=f"circle_{_rotation}",
            camera=False,
            param_options=_single_option,
            plan=_circle_planner(_rotation),
            caption=lambda p, noun, r=_rotation: f"{noun} moving in a {r} circle",
            description=f"one {_rotation} turn round a circle per clip",
        )
    )
register_motion_family(
    MotionFamily(
        name="zigzag",
        camera=False,
        param_options=lambda spec: [{"direction": d} for d in spec.motion.zigzag_directions],
        plan=_plan_zigzag,
        caption=lambda p, noun: f"{noun} zigzagging {DIRECTION_WORDS[str(p['direction'])]}",
        description="overall progress in one direction with sharp sideways swings",
    )
)
for _trend, _verb in (("grow", "growing"), ("shrink", "shrinking")):
    register_motion_family(
        MotionFamily(
            name=_trend,
            camera=False,
            param_options=_single_option,
            plan=_scale_planner(_trend),
            caption=lambda p, noun, v=_verb: f"{noun} {v}",
            description=f"the object {_verb} in place",
        )
    )
register_motion_family(
    MotionFamily(
        name="pan",
        camera=True,
        param_options=_direction_speed_options,
        plan=_plan_pan,
        caption=lambda p, noun: (
            f"camera {_speed_phrase(p)}panning {DIRECTION_WORDS[str(p['direction'])]} over {noun}"
        ),
        description="the view slides over a textured scene; object and texture move together",
    )
)
register_motion_family(
    MotionFamily(
        name="zoom_in",
        camera=True,
        param_options=_single_option,
        plan=_zoom_planner("zoom_in"),
        caption=lambda p, noun: f"camera zooming in on {noun}",
        description="the textured scene is magnified about the object",
    )
)
register_motion_family(
    MotionFamily(
        name="zoom_out",
        camera=True,
        param_options=_single_option,
        plan=_zoom_planner("zoom_out"),
        caption=lambda p, noun: f"camera zooming out from {noun}",
        description="the textured scene shrinks about the object",
    )
)


def infeasible_motions(spec: WorldSpec) -> list[str]:
    """One line per family/parameter choice whose largest object cannot stay inside the frame."""
    problems = []
    largest = spec.object.size_range[1] * spec.side
    rng = np.random.default_rng(0)  # placement randomness is irrelevant to feasibility
    for name in spec.families:
        family = MOTION_FAMILIES[name]
        for params in family.param_options(spec):
            try:
                family.plan(spec, params, largest, rng)
            except WorldGeometryError as error:
                problems.append(f"family {name} {dict(params)}: {error}")
    return problems
