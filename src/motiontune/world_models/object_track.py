"""Does the generated object follow the reference's object? Both tracks read from the frames by the world analyser.

    scorer = ObjectTrackScorer.from_params(params["world"])
    reading = scorer.read_reference(reference_frames)            # None: no world-like object in the reference
    scorer.score(reading, generated_frames)                      # {"object_trajectory_similarity": ..., ...}

Point-track motion fidelity compares every moving point, background included; this compares the one object a
prompt names: its centroid track in the generated clip against the reference's, as the world benchmark scores
against ground truth (``motiontune.world.scoring.trajectory_similarity``: normalised cross-correlation of
per-frame displacements, in [-1, 1]). It applies to clips the analyser can read, one saturated object of a palette
colour on a background (the sample data's world clips, ball_right); for other videos the reference reading is
None and the columns stay empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from motiontune.world.analyser import AnalyserConfig, analyse_video
from motiontune.world.scoring import Reference, ScoringConfig, trajectory_similarity
from motiontune.world.spec import WorldSpec

@dataclass(frozen=True)
class ObjectTrackScorer:
    """The world's palette, analyser and scoring settings (``world`` in conf/base/parameters_world.yml)."""

    world: Mapping[str, Any]

    @classmethod
    def from_params(cls, world: Mapping[str, Any]) -> ObjectTrackScorer:
        WorldSpec.from_params(world)  # a wrong ``world`` section fails here, before any video is read
        return cls(dict(world))

    def _spec(self, shape: tuple[int, int, int]) -> WorldSpec:
        """The world spec at a clip's (H, W, F): the analyser calibrates its shapes at the frame size."""
        height, width, frames = shape
        return WorldSpec.from_params({**self.world, "height": height, "width": width, "num_frames": frames})

    def _analyse(self, frames: np.ndarray) -> Any:
        """The analyser's reading of uint8 (F, H, W, 3) frames; None for a clip the world cannot describe (e.g.
        smaller than the world's minimum frame size): then there is no object to compare."""
        try:
            spec = self._spec((int(frames.shape[1]), int(frames.shape[2]), int(frames.shape[0])))
        except ValueError:
            return None
        return analyse_video(frames, spec, AnalyserConfig.from_params(self.world.get("analyser")))

    def read_reference(self, frames: np.ndarray) -> Reference | None:
        """The reference's object (colour, shape, centroid track) from uint8 (F, H, W, 3) frames; None when the
        analyser finds no object or it does not move (then no track agreement is defined)."""
        analysis = self._analyse(frames)
        if analysis is None or not analysis.found or analysis.path_kind == "static":
            return None
        return Reference.from_analysis(analysis)

    def score(self, reference: Reference | None, frames: np.ndarray) -> dict[str, Any]:
        """``object_trajectory_similarity`` of a generated uint8 (F, H, W, 3) clip's object with ``reference``'s
        (0.0 when no object is found in enough of its frames; None without a reference object), and what was read: ``object_found``,
        ``object_colour``, ``object_direction``."""
        analysis = self._analyse(frames)
        if analysis is None:
            return {"object_trajectory_similarity": None, "object_found": None, "object_colour": None, "object_direction": None}
        similarity: float | None = None
        if reference is not None:
            similarity = 0.0
            if analysis.found:
                result = trajectory_similarity(analysis.centroids, analysis.frame_size, reference.centroids,
                                               reference.frame_size, ScoringConfig.from_params(self.world.get("scoring")))
                similarity = 0.0 if result is None else float(result[0])  # None: too few frames with the object
        return {"object_trajectory_similarity": similarity, "object_found": float(analysis.found),
                "object_colour": analysis.colour, "object_direction": analysis.direction}
