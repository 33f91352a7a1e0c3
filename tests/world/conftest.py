"""Shared motion-world fixtures: one default world, a mixed sample set and its analyses."""

from __future__ import annotations

import pytest

from motiontune.world import (
    AnalyserConfig,
    VideoAnalysis,
    WorldSample,
    WorldSpec,
    analyse_video,
    sample_world,
)

# Enough clips for every family, colour, shape and background to appear several times
# (9 families x 6 colours x 4 shapes x 3 backgrounds), small enough for a fast suite.
MIXED_SAMPLE_COUNT = 200
MIXED_SAMPLE_SEED = 20261121


@pytest.fixture(scope="session")
def world_spec() -> WorldSpec:
    return WorldSpec()


@pytest.fixture(scope="session")
def mixed_samples(world_spec: WorldSpec) -> list[WorldSample]:
    """Clips of every family (held-out ones included), as a benchmark would see them."""
    return sample_world(world_spec, MIXED_SAMPLE_COUNT, split="all", seed=MIXED_SAMPLE_SEED)


@pytest.fixture(scope="session")
def mixed_analyses(world_spec: WorldSpec, mixed_samples: list[WorldSample]) -> list[VideoAnalysis]:
    config = AnalyserConfig()
    return [analyse_video(sample.frames, world_spec, config) for sample in mixed_samples]
