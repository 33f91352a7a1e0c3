"""Motion world: a hermetic benchmark of coloured shapes with ground-truth motion (issue 6).

    from motiontune.world import WorldSpec, sample_world, analyse_video, Intent, score_video

    spec = WorldSpec.from_params(params["world"])          # conf/base/parameters_world.yml
    clips = sample_world(spec, 100, split="train", seed=0)  # frames, caption, per-frame truth
    analysis = analyse_video(clips[0].frames, spec)          # ground-truth-free reading
    score = score_video(analysis, Intent.from_caption(clips[0].caption, spec))

Modules: ``vocabulary`` (palette, shapes, directions), ``spec`` (WorldSpec), ``motions`` (motion
family registry), ``rendering`` (backgrounds, anti-aliased objects), ``generator`` (samples and
captions), ``captions`` (parsing), ``analyser`` and ``scoring``. Using a backbone (imported on demand, not
here): ``competence`` (does a backbone draw what a caption says?), ``time_symmetry`` (does it know which way time
runs?) and ``benchmark`` (methods vs. control against ground-truth motion).
"""

from motiontune.world.analyser import AnalyserConfig, VideoAnalysis, analyse_video, segment_colours
from motiontune.world.captions import CaptionMeaning, expected_truth, parse_caption
from motiontune.world.generator import WorldSample, caption_for, render_sample, sample_world
from motiontune.world.motions import (
    MOTION_FAMILIES,
    MotionFamily,
    MotionPlan,
    MotionTruth,
    WorldGeometryError,
    register_motion_family,
)
from motiontune.world.scoring import (
    Intent,
    Reference,
    ScoringConfig,
    WorldScore,
    scale_similarity,
    score_video,
    trajectory_jumps,
    trajectory_similarity,
)
from motiontune.world.spec import WorldSpec

__all__ = [
    "MOTION_FAMILIES",
    "AnalyserConfig",
    "CaptionMeaning",
    "Intent",
    "MotionFamily",
    "MotionPlan",
    "MotionTruth",
    "Reference",
    "ScoringConfig",
    "VideoAnalysis",
    "WorldGeometryError",
    "WorldSample",
    "WorldScore",
    "WorldSpec",
    "analyse_video",
    "caption_for",
    "expected_truth",
    "parse_caption",
    "register_motion_family",
    "render_sample",
    "sample_world",
    "scale_similarity",
    "score_video",
    "segment_colours",
    "trajectory_jumps",
    "trajectory_similarity",
]
