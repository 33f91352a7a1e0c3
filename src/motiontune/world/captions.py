"""Read a caption of the world's grammar back into family, parameters, colour and shape.

The grammar is whatever ``caption_for`` writes, so parsing enumerates it: every family and
parameter choice of the spec, with every palette colour and shape (also those outside the spec,
so a benchmark target such as "a purple star moving left" parses in a six-colour world).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from motiontune.world.generator import WorldSample, caption_for
from motiontune.world.motions import MOTION_FAMILIES, MotionTruth, ParamValue
from motiontune.world.spec import WorldSpec
from motiontune.world.vocabulary import PALETTE, SHAPES, noun_phrase


@dataclass(frozen=True)
class CaptionMeaning:
    """What a caption says: motion family with its discrete parameters, colour and shape."""

    family: str
    params: dict[str, ParamValue]
    colour: str
    shape: str


def normalise_caption(caption: str) -> str:
    """Lower case, single spaces, no trailing full stop: the form captions are matched in."""
    return re.sub(r"\s+", " ", caption.strip().lower()).rstrip(".")


_INDEX_CACHE: dict[str, dict[str, CaptionMeaning]] = {}


def caption_index(spec: WorldSpec) -> dict[str, CaptionMeaning]:
    """Every caption the spec's families can produce (any palette colour and shape) -> meaning."""
    key = repr(spec)
    if key not in _INDEX_CACHE:
        index: dict[str, CaptionMeaning] = {}
        for family in spec.families:
            for params in MOTION_FAMILIES[family].param_options(spec):
                for colour in PALETTE:
                    for shape in SHAPES:
                        text = normalise_caption(caption_for(family, params, colour, shape))
                        index[text] = CaptionMeaning(family, dict(params), colour, shape)
        _INDEX_CACHE[key] = index
    return _INDEX_CACHE[key]


def parse_caption(caption: str, spec: WorldSpec) -> CaptionMeaning:
    """The meaning of a caption of the world's grammar; ValueError naming it when it is not one."""
    meaning = caption_index(spec).get(normalise_caption(caption))
    if meaning is None:
        raise ValueError(
            f"{caption!r} is not a caption of this world's grammar "
            f"(e.g. {caption_for('translate', {'direction': 'right', 'speed': 'medium'}, 'red', 'circle')!r})"
        )
    return meaning


def expected_truth(spec: WorldSpec, family: str, params: dict[str, ParamValue]) -> MotionTruth:
    """The screen-space ground truth a clip of this family and parameters has (no rendering).

    Plans once with the smallest object at a fixed placement; the discrete truth (direction, path
    kind, rotation, area trend, camera) does not depend on size or placement.
    """
    motion = MOTION_FAMILIES[family]
    defaults = motion.param_options(spec)[0]
    smallest = spec.object.size_range[0] * spec.side
    return motion.plan(spec, {**defaults, **params}, smallest, np.random.default_rng(0)).truth


def world_vocabulary(spec: WorldSpec, extra_words: Iterable[str] = ()) -> tuple[str, ...]:
    """Every word of every caption the world can write (all families, colours, shapes) plus extras."""
    words: set[str] = set(extra_words)
    for colour in spec.colours:
        for shape in spec.shapes:
            noun = noun_phrase(colour, shape)
            words.update(noun.split())
            for name in spec.families:
                family = MOTION_FAMILIES[name]
                for params in family.param_options(spec):
                    words.update(family.caption(params, noun).split())
    return tuple(sorted(words))


def appearance_caption(sample: WorldSample) -> str:
    """The caption without its motion: "a red circle" (what the benchmark's target prompts say)."""
    return noun_phrase(sample.colour, sample.shape)
