"""The object-track readout of evaluate: the generated object's track against the reference object's."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from motiontune.metrics.evaluation import evaluate_motion
from motiontune.world_models.object_track import ObjectTrackScorer
from motiontune.metrics.trackers import build_tracker
from motiontune.world import WorldSpec, render_sample


@pytest.fixture(scope="module")
def world(project_root) -> dict:
    return yaml.safe_load((project_root / "conf/base/parameters_world.yml").read_text())["world"]


def _clip(world: dict, colour: str, shape: str, family: str = "zigzag", side: int = 32) -> np.ndarray:
    spec = WorldSpec.from_params({**world, "height": side, "width": side})
    params = {"zigzag": {"direction": "right"}, "translate": {"direction": "right", "speed": "fast"}}.get(family)
    return render_sample(spec, family, params=params, colour=colour, shape=shape, background="plain", seed=4).frames


def test_the_same_motion_in_another_appearance_follows_and_its_reverse_does_not(world):
    scorer = ObjectTrackScorer.from_params(world)
    reference = scorer.read_reference(_clip(world, "red", "square"))
    assert reference is not None and reference.colour == "red"
    follower = _clip(world, "blue", "circle")
    same = scorer.score(reference, follower)
    assert same["object_trajectory_similarity"] > 0.9 and same["object_colour"] == "blue" and same["object_found"] == 1.0
    assert same["object_direction"] == "right"
    reverse = scorer.score(reference, follower[::-1].copy())
    # A metric that scores a video and its reverse alike is broken. Reversed, the zigzag goes left with its swing
    # mirrored (about uncorrelated); a straight line reversed is the exact opposite.
    assert reverse["object_trajectory_similarity"] < 0.2
    line = scorer.read_reference(_clip(world, "red", "square", family="translate"))
    line_follower = _clip(world, "blue", "circle", family="translate")
    assert scorer.score(line, line_follower)["object_trajectory_similarity"] > 0.95
    assert scorer.score(line, line_follower[::-1].copy())["object_trajectory_similarity"] < -0.95
    still = scorer.score(reference, np.repeat(follower[:1], len(follower), axis=0))
    assert still["object_trajectory_similarity"] == 0.0
    # At another frame size (ingest's 64 px against a 32 px output) the tracks are compared in the reference's pixels.
    larger = scorer.score(scorer.read_reference(_clip(world, "red", "square", side=64)), follower)
    assert larger["object_trajectory_similarity"] > 0.9
    # A follower whose last frame breaks (the object drawn back at its start): the jump is counted and left out.
    assert scorer.score(line, line_follower)["object_jump_share"] == 0.0
    broken = line_follower.copy()
    broken[-1] = broken[0]
    jumped = scorer.score(line, broken)
    assert jumped["object_trajectory_similarity"] < 0.5
    assert jumped["object_jump_share"] == pytest.approx(1 / (len(broken) - 1))
    assert jumped["object_jump_free_trajectory_similarity"] > 0.95


def test_a_growing_reference_is_read_and_its_reverse_scores_opposite(world):
    """Grow in place: the centroid stays put, so only the size change tells the clip from its reverse."""
    scorer = ObjectTrackScorer.from_params(world)
    reference = scorer.read_reference(_clip(world, "red", "square", family="grow"))
    assert reference is not None  # an object that stays in place but grows is a motion to follow
    follower = _clip(world, "blue", "circle", family="grow")
    same, reverse = scorer.score(reference, follower), scorer.score(reference, follower[::-1].copy())
    assert same["object_scale_similarity"] > 0.8 and reverse["object_scale_similarity"] < -0.8
    still = scorer.score(reference, np.repeat(follower[:1], len(follower), axis=0))
    assert still["object_scale_similarity"] == 0.0
    # A reference that keeps its size has no scale column, and a still object without growth is no reference.
    line = scorer.read_reference(_clip(world, "red", "square", family="translate"))
    assert scorer.score(line, follower)["object_scale_similarity"] is None
    assert scorer.read_reference(np.repeat(follower[:1], len(follower), axis=0)) is None


def test_a_reference_without_a_world_object_leaves_the_similarity_empty(world):
    scorer = ObjectTrackScorer.from_params(world)
    grey = np.random.default_rng(0).integers(100, 140, size=(8, 32, 32, 3), dtype=np.uint8)
    assert scorer.read_reference(grey) is None
    assert scorer.score(None, _clip(world, "blue", "circle"))["object_trajectory_similarity"] is None
    tiny = np.zeros((8, 16, 16, 3), dtype=np.uint8)  # below the world's smallest frame: nothing to read, no error
    assert scorer.read_reference(tiny) is None and scorer.score(None, tiny)["object_found"] is None
    with pytest.raises(ValueError):
        ObjectTrackScorer.from_params({**world, "colours": ["no-such-colour"]})


def test_evaluate_reports_the_object_columns_and_their_mean(world):
    scorer = ObjectTrackScorer.from_params(world)
    reference = _clip(world, "red", "square")
    follower = _clip(world, "blue", "circle")
    generated = {"m/00_a-blue-circle": ("a blue circle", follower), "m/01_a-blue-circle": ("a blue circle", follower[::-1].copy())}
    report = evaluate_motion(reference, generated, build_tracker("opencv_lk", grid_size=8), "lk", 2.0, object_track=scorer)
    forward, backward = (video["object_trajectory_similarity"] for video in report["videos"])
    assert forward > 0.9 and backward < 0.2
    assert report["mean"]["object_trajectory_similarity"] == pytest.approx((forward + backward) / 2)
    assert report["mean"]["object_found"] == 1.0
    assert report["mean"]["object_scale_similarity"] is None  # a zigzag keeps its size
    assert report["mean"]["object_jump_share"] == 0.0  # a rendered zigzag moves continuously
    assert report["mean"]["object_jump_free_trajectory_similarity"] == pytest.approx((forward + backward) / 2)
    assert "object_colour" not in report["mean"]  # a reading, not averaged
    plain = evaluate_motion(reference, generated, build_tracker("opencv_lk", grid_size=8), "lk", 2.0)
    assert "object_trajectory_similarity" not in plain["videos"][0] and "object_trajectory_similarity" not in plain["mean"]
