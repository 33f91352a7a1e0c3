"""Tests for motiontune.io.prompts.simplify_prompt with hand-written expected outputs."""

from __future__ import annotations

import pytest

from motiontune.io.prompts import DEFAULT_STOP_PHRASES, simplify_prompt


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        # The VMC paper's example (seed 003 sec. 3.2).
        ("a cat is roaring on the grass under the tree", "a cat is roaring"),
        # Colour dropped, direction kept, floor cut.
        ("a red ball rolling to the right on a gray floor", "a ball rolling to the right"),
        # A place phrase before the verb describes the subject: cut only up to the verb.
        ("a man in a red shirt running to the left on a beach", "a man running to the left"),
        # Leading style phrase, trailing style tag, colour adjective.
        ("A photo of a blue car driving on a snowy road, 4k", "a car driving"),
        ("masterpiece, best quality, a wooden boat sailing across a calm lake at sunset.", "a boat sailing"),
        ("A cinematic shot of a horse galloping through a field", "a horse galloping"),
        # Article re-agreed after the colour went; "onto" is a place preposition.
        ("An orange cat jumping onto a table", "A cat jumping"),
        # A colour used as the noun stays; "down" is motion.
        ("an orange rolling down a hill", "an orange rolling down a hill"),
        # Shade + colour runs joined by "and" go together.
        ("a dark blue and white bus turning left at a busy crossing", "a bus turning left"),
        # Motion paths introduced by a place preposition are kept.
        ("a green square moving in a circle over a blue background", "a square moving in a circle"),
        ("a dog running in circles in the park", "a dog running in circles"),
        ("a drone flying up over a forest, cinematic, 8k", "a drone flying up"),
        ("camera panning to the right across a wall of colourful rectangles", "camera panning to the right"),
        # No verb at all: the subject is what is left.
        ("a cat on a sofa", "a cat"),
        # Nothing to remove: unchanged.
        ("the ball is red", "the ball is red"),
        # Whitespace collapsed.
        ("  a  bird   flying  ", "a bird flying"),
    ],
)
def test_simplify_prompt(prompt: str, expected: str) -> None:
    assert simplify_prompt(prompt) == expected


@pytest.mark.parametrize("prompt", ["on the beach", "cinematic, 4k"])
def test_never_empty_falls_back_to_original(prompt: str) -> None:
    assert simplify_prompt(prompt) == prompt


def test_custom_stop_phrases() -> None:
    assert simplify_prompt("vintage film, a dog running") == "vintage film, a dog running"
    assert simplify_prompt("vintage film, a dog running", (*DEFAULT_STOP_PHRASES, "vintage film")) == "a dog running"


def test_custom_place_prepositions() -> None:
    assert simplify_prompt("a dog running towards the camera") == "a dog running towards the camera"
    assert simplify_prompt("a dog running towards the camera", place_prepositions=("towards",)) == "a dog running"
