"""Seeded generator of motion-world clips with captions and per-frame ground truth.

    spec = WorldSpec.from_params(params["world"])
    train = sample_world(spec, 1000, split="train", seed=0)     # never a held-out family
    refs = sample_world(spec, 20, split="heldout", seed=1)      # only held-out families

Sample ``i`` of ``(seed, split)`` depends on nothing else (not on ``count``), so a longer list
starts with the shorter one and the same seed always gives identical arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from motiontune.world.motions import (
    MOTION_FAMILIES,
    MotionFamily,
    MotionPlan,
    MotionTruth,
    ParamValue,
    register_motion_family,
)
from motiontune.world.rendering import make_background, render_clip
from motiontune.world.spec import SPLITS, WorldSpec
from motiontune.world.vocabulary import PALETTE, SHAPES, noun_phrase

__all__ = [
    "MOTION_FAMILIES",
    "MotionFamily",
    "MotionTruth",
    "WorldSample",
    "WorldSpec",
    "caption_for",
    "register_motion_family",
    "render_sample",
    "sample_world",
]

# Mixed into the seed so the splits draw independent streams from the same seed.
_SPLIT_STREAMS = {split: index for index, split in enumerate(SPLITS)}


@dataclass(frozen=True)
class WorldSample:
    """One generated clip and everything known about it.

    Attributes:
        frames: (F, H, W, 3) uint8 RGB.
        caption: text from the world's grammar, e.g. "a red circle moving right".
        colour, shape, background: what was drawn (vocabulary names).
        truth: motion ground truth in screen terms (family, params, direction, path, ...).
        centres: (F, 2) float32 object area centroid x, y per frame, px.
        sizes: (F,) float32 object size per frame, px; drawn area = fill_factor * size**2.
        fill_factor: area / size**2 of this shape.
        split, seed, index: where the sample comes from (``sample_world`` arguments).
    """

    frames: np.ndarray
    caption: str
    colour: str
    shape: str
    background: str
    truth: MotionTruth
    centres: np.ndarray
    sizes: np.ndarray
    fill_factor: float
    split: str
    seed: int
    index: int

    @property
    def family(self) -> str:
        """Motion family name."""
        return self.truth.family

    @property
    def areas(self) -> np.ndarray:
        """(F,) expected object area per frame in px**2."""
        return self.fill_factor * self.sizes.astype(np.float64) ** 2


def caption_for(family: str, params: Mapping[str, ParamValue], colour: str, shape: str) -> str:
    """Caption of a clip from the world's grammar ("camera panning left over a red star")."""
    noun = noun_phrase(colour, shape)
    return MOTION_FAMILIES[family].caption(params, noun)


def _sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_STREAMS[split], index]))


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _draw(
    spec: WorldSpec,
    rng: np.random.Generator,
    family: str,
    params: Mapping[str, ParamValue] | None,
    colour: str | None,
    shape: str | None,
    background: str | None,
) -> tuple[MotionPlan, np.ndarray, str, str, str, str]:
    """Choose whatever is not given, plan and render; returns plan, frames, caption and names."""
    motion = MOTION_FAMILIES[family]
    # The draw order is fixed so a sample is a pure function of its rng.
    options = motion.param_options(spec)
    chosen_params = dict(options[int(rng.integers(len(options)))])
    if params is not None:
        chosen_params.update(params)
    chosen_colour = _pick(rng, spec.colours)
    chosen_shape = _pick(rng, spec.shapes)
    chosen_background = _pick(rng, spec.backgrounds)
    colour = colour or chosen_colour
    shape = shape or chosen_shape
    # A pan or zoom over a flat background would be invisible: camera motions are textured.
    background = "texture" if motion.camera else (background or chosen_background)
    low, high = spec.object.size_range
    base_size = rng.uniform(low, high) * spec.side
    plan = motion.plan(spec, chosen_params, base_size, rng)
    canvas = make_background(background, plan.canvas_size, spec.background, rng)
    frames = render_clip(
        plan, canvas, SHAPES[shape], PALETTE[colour].rgb, (spec.height, spec.width), spec.supersample
    )
    caption = caption_for(family, chosen_params, colour, shape)
    return plan, frames, caption, colour, shape, background


def _sample_from(
    spec: WorldSpec,
    rng: np.random.Generator,
    family: str,
    split: str,
    seed: int,
    index: int,
    params: Mapping[str, ParamValue] | None = None,
    colour: str | None = None,
    shape: str | None = None,
    background: str | None = None,
) -> WorldSample:
    if family not in MOTION_FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {sorted(MOTION_FAMILIES)}")
    for kind, name, known in (("colour", colour, PALETTE), ("shape", shape, SHAPES)):
        if name is not None and name not in known:
            raise ValueError(f"unknown {kind} {name!r}; known: {sorted(known)}")
    plan, frames, caption, colour, shape, background = _draw(
        spec, rng, family, params, colour, shape, background
    )
    return WorldSample(
        frames=frames,
        caption=caption,
        colour=colour,
        shape=shape,
        background=background,
        truth=plan.truth,
        centres=plan.centres.astype(np.float32),
        sizes=plan.sizes.astype(np.float32),
        fill_factor=SHAPES[shape].fill_factor,
        split=split,
        seed=seed,
        index=index,
    )


def sample_world(
    spec: WorldSpec, count: int, split: str = "train", seed: int | None = None
) -> list[WorldSample]:
    """``count`` clips of ``split`` ("train": no held-out family; "heldout": only those; "all").

    Each sample draws its family uniformly from the split's families, then its parameters,
    colour, shape, background (texture for camera motions), size and placement, all from a
    generator seeded by ``(seed, split, index)``; ``seed=None`` uses ``spec.seed``.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    seed = spec.seed if seed is None else int(seed)
    families = spec.families_for(split)
    if not families:
        raise ValueError(
            f"split {split!r} has no families "
            f"(families={list(spec.families)}, held_out={list(spec.held_out_families)})"
        )
    samples = []
    for index in range(count):
        rng = _sample_rng(seed, split, index)
        family = _pick(rng, families)
        samples.append(_sample_from(spec, rng, family, split, seed, index))
    return samples


def render_sample(
    spec: WorldSpec,
    family: str,
    *,
    params: Mapping[str, ParamValue] | None = None,
    colour: str | None = None,
    shape: str | None = None,
    background: str | None = None,
    seed: int = 0,
) -> WorldSample:
    """One clip of a chosen family; anything left None is drawn from ``seed``.

    ``params`` overrides the family's drawn parameters (e.g. ``{"direction": "left",
    "speed": "fast"}``); colour and shape may be any palette colour / shape, also ones outside the
    spec (a benchmark target "a purple star" can be drawn for reference). Camera families always
    use the texture background.
    """
    return _sample_from(
        spec,
        _sample_rng(seed, "all", 0),
        family,
        split="all",
        seed=seed,
        index=0,
        params=params,
        colour=colour,
        shape=shape,
        background=background,
    )
