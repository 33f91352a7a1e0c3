"""Does the generated object follow the reference's object? Both tracks read from the frames by the world analyser.

    scorer = ObjectTrackScorer.from_params(params["world"])
    reading = scorer.read_reference(reference_frames)            # None: no world-like object in the reference
    scorer.score(reading, generated_frames)                      # {"object_trajectory_similarity": ..., ...}

Point-track motion fidelity compares every moving point, background included; this compares the one object a
prompt names: its centroid track in the generated clip against the reference's, as the world benchmark scores
against ground truth (``motiontune.world.scoring.trajectory_similarity``: normalised cross-correlation of
per-frame displacements, in [-1, 1]). It applies to clips the analyser can read, one saturated object of a palette
colour on a background (the sample data's world clips, ball_right); for other videos the reference reading is
None and the columns stay empty. For a reference whose object grows or shrinks (grow, shrink, zoom: the centroid
stays put, so a clip and its reverse have the same track) ``object_scale_similarity`` compares the per-frame
log-area changes too (``motiontune.world.scoring.scale_similarity``, as the world benchmark does).
``object_jump_share`` and ``object_jump_free_trajectory_similarity`` tell a broken frame (the object redrawn
elsewhere in one frame) from a wrong motion (``motiontune.world.scoring.trajectory_jumps``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from motiontune.world.analyser import AnalyserConfig, analyse_video
from motiontune.world.scoring import (Reference, ScoringConfig, reference_changes_scale, scale_similarity,
                                      trajectory_jumps, trajectory_similarity)
from motiontune.world.spec import WorldSpec

# The keys evaluation averages over videos; the others of OBJECT_KEYS are readings (colour and direction names).
OBJECT_MEAN_KEYS = ("object_trajectory_similarity", "object_scale_similarity", "object_jump_share",
                    "object_jump_free_trajectory_similarity", "object_found")
OBJECT_KEYS = (*OBJECT_MEAN_KEYS, "object_colour", "object_direction")


@dataclass(frozen=True)
class ObjectTrackScorer:
    """The world's palette, analyser and scoring settings (``world`` in conf/base/parameters_world.yml)."""

    world: Mapping[str, Any]
    mean_keys: ClassVar[tuple[str, ...]] = OBJECT_MEAN_KEYS

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

    def _scoring(self) -> ScoringConfig:
        return ScoringConfig.from_params(self.world.get("scoring"))

    def read_reference(self, frames: np.ndarray) -> Reference | None:
        """The reference's object (colour, shape, centroid track, areas) from uint8 (F, H, W, 3) frames; None when
        the analyser finds no object or it neither moves nor changes size (then no agreement is defined)."""
        analysis = self._analyse(frames)
        if analysis is None or not analysis.found:
            return None
        reference = Reference.from_analysis(analysis)
        if analysis.path_kind == "static" and not reference_changes_scale(reference, self._scoring()):
            return None
        return reference

    def score(self, reference: Reference | None, frames: np.ndarray) -> dict[str, Any]:
        """How a generated uint8 (F, H, W, 3) clip's object follows ``reference``'s, and what was read.

        ``object_trajectory_similarity``: of the centroid tracks; ``object_scale_similarity``: of the size changes,
        only for a reference that grows or shrinks (else None). Each is 0.0 when no object is found in enough of
        the clip's frames and None without a reference object. ``object_jump_share``: share of the clip's frame
        steps where the object jumps (None without a reference object or when none is found);
        ``object_jump_free_trajectory_similarity``: the trajectory similarity without those steps. ``object_found``, ``object_colour``,
        ``object_direction``: the analyser's reading.
        """
        analysis = self._analyse(frames)
        if analysis is None:
            return dict.fromkeys(OBJECT_KEYS)
        config = self._scoring()
        similarity: float | None = None
        scale: float | None = None
        jump_share: float | None = None
        jump_free: float | None = None
        if reference is not None:
            similarity = jump_free = 0.0
            if analysis.found:
                tracks = (analysis.centroids, analysis.frame_size, reference.centroids, reference.frame_size, config)
                result = trajectory_similarity(*tracks)
                if result is not None:  # None: too few frames with the object
                    similarity = float(result[0])
                    jump_share, jump_free = trajectory_jumps(*tracks)
            if reference_changes_scale(reference, config):
                scale = 0.0
                if analysis.found:
                    value = scale_similarity(Reference.from_analysis(analysis).areas, reference.areas, config)
                    scale = 0.0 if value is None else value
        return {"object_trajectory_similarity": similarity, "object_scale_similarity": scale,
                "object_jump_share": jump_share, "object_jump_free_trajectory_similarity": jump_free,
                "object_found": float(analysis.found), "object_colour": analysis.colour,
                "object_direction": analysis.direction}
