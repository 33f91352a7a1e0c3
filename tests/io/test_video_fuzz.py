"""Property test of the video reader: whatever bytes a file holds, reading it gives a valid clip or a
one-line :class:`VideoInputError`, never another exception (FFmpeg's or numpy's)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motiontune.io.video import VideoInputError, probe_video, read_video, write_gif, write_video

# Bounded: ~100 files per container kind, a few seconds in all.
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    frames = np.zeros((6, 16, 16, 3), dtype=np.uint8)
    for index in range(6):
        frames[index, :, index * 2 : index * 2 + 3] = (255, 40 * index, 0)
    return {
        ".mp4": write_video(folder / "seed.mp4", frames, 8).read_bytes(),
        ".gif": write_gif(folder / "seed.gif", frames, 8).read_bytes(),
    }


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=16)),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, steps: list[tuple[str, float, bytes]]) -> bytes:
    buffer = bytearray(data)
    for kind, where, payload in steps:
        position = int(where * len(buffer)) if buffer else 0
        if kind == "flip":
            buffer[position : position + len(payload)] = payload
        elif kind == "cut":
            del buffer[position:]
        else:
            buffer[position:position] = payload
    return bytes(buffer)


def check_reader_contract(path: Path) -> None:
    info = probe_video(path)
    assert info.readable == (info.error is None)
    try:
        frames, fps = read_video(path)
    except VideoInputError as error:
        assert "\n" not in str(error) and str(error).startswith(f"{path}: ")
        return
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] >= 1 and frames.shape[-1] == 3
    assert fps > 0 and np.isfinite(fps)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
@FUZZ
@given(steps=mutations)
def test_mutated_videos_read_or_fail_with_one_line(valid_files, tmp_path, suffix, steps):
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(mutate(valid_files[suffix], steps))
    check_reader_contract(path)
    os.unlink(path)


@FUZZ
@given(data=st.binary(max_size=512), suffix=st.sampled_from([".mp4", ".gif", ".webm", ".mov"]))
def test_arbitrary_bytes_read_or_fail_with_one_line(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    check_reader_contract(path)
    os.unlink(path)
