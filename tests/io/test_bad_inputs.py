"""The bad-input corpus: every input a user can get wrong, through the real ingest node with the shipped rules.

Each bad input must give one line naming the input and the rule it breaks, before anything is produced;
with ``ingest.on_error: skip`` the good entries of the same manifest still go through.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml

from motiontune.io.manifest import ManifestError
from motiontune.io.validation import VideoValidationError
from motiontune.io.video import probe_video, read_video, write_gif, write_video
from motiontune.pipelines.ingest.nodes import ingest_references

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    **yaml.safe_load((REPO_ROOT / "conf/base/parameters.yml").read_text()),
    **yaml.safe_load((REPO_ROOT / "conf/base/parameters_ingest.yml").read_text()),
}
VIDEO = SHIPPED["video"]
NUM_FRAMES = VIDEO["num_frames"]


def ingest_params(folder: Path, on_error: str = "stop") -> dict:
    return {**SHIPPED["ingest"], "manifest_dir": str(folder), "on_error": on_error, "entries": None}


def moving_frames(count: int, height: int = 32, width: int = 32) -> np.ndarray:
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for index in range(count):
        frames[index, :, (index * 2) % width] = 255
    return frames


def zero_byte(folder: Path) -> str:
    (folder / "empty.mp4").write_bytes(b"")
    return "empty.mp4"


def truncated_mp4(folder: Path) -> str:
    data = write_video(folder / "whole.mp4", moving_frames(12), 8).read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (folder / "whole.mp4").unlink()
    return "truncated.mp4"


def text_named_mp4(folder: Path) -> str:
    (folder / "notes.mp4").write_text("these are my notes, not a video\n")
    return "notes.mp4"


def one_frame_gif(folder: Path) -> str:
    write_gif(folder / "still.gif", moving_frames(1), 8)
    return "still.gif"


def too_short(folder: Path) -> str:
    write_video(folder / "short.mp4", moving_frames(NUM_FRAMES - 3), 8)
    return "short.mp4"


def extreme_aspect(folder: Path) -> str:
    write_video(folder / "strip.mp4", moving_frames(12, height=16, width=320), 8)
    return "strip.mp4"


def huge_declared_size(folder: Path) -> str:
    side = SHIPPED["ingest"]["rules"]["max_side"] + 128
    with av.open(str(folder / "huge.mp4"), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame(side, side, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return "huge.mp4"


def empty_folder(folder: Path) -> str:
    (folder / "frames").mkdir()
    (folder / "frames" / "readme.txt").write_text("no frames here")
    return "frames"


def missing_file(folder: Path) -> str:
    return "not_there.mp4"


# (builder, what the one line must say after "<path>: ")
BAD_VIDEOS: dict[str, tuple[Callable[[Path], str], str]] = {
    "zero-byte": (zero_byte, "unreadable video (empty file)"),
    "truncated-mp4": (truncated_mp4, "unreadable video ("),
    "text-named-mp4": (text_named_mp4, "unreadable video ("),
    "one-frame-gif": (one_frame_gif, f"has 1 frames, fewer than num_frames={NUM_FRAMES}"),
    "shorter-than-num-frames": (too_short, f"has {NUM_FRAMES - 3} frames, fewer than num_frames={NUM_FRAMES}"),
    "extreme-aspect": (extreme_aspect, "aspect ratio 320x16 is beyond max_aspect_ratio=4"),
    "huge-declared-size": (huge_declared_size, "size 8320x8320 outside [16, 8192] pixels per side"),
    "folder-without-frames": (empty_folder, "unreadable video (folder contains no png/jpg/jpeg/webp frames)"),
    "missing-file": (missing_file, "unreadable video (file not found)"),
}


def entry(name: str, path: str, prompt: str = "a dot moving right") -> dict:
    return {"name": name, "path": path, "prompt": prompt, "target_prompts": ["a cat moving right"]}


@pytest.mark.parametrize("case", sorted(BAD_VIDEOS))
def test_each_bad_video_gets_one_line_naming_file_and_rule(tmp_path: Path, case: str) -> None:
    build, rule = BAD_VIDEOS[case]
    path = build(tmp_path)
    with pytest.raises(VideoValidationError) as error:
        ingest_references({"videos": [entry("bad", path)]}, VIDEO, ingest_params(tmp_path))
    messages = error.value.messages
    assert any(message.startswith(f"{tmp_path / path}: {rule}") for message in messages), messages
    # one line per broken rule, each naming the file (the 1-frame huge video breaks two rules)
    assert all(message.startswith(f"{tmp_path / path}: ") and "\n" not in message for message in messages)
    assert len(messages) == (2 if case == "huge-declared-size" else 1), messages


def test_skip_leaves_out_every_bad_video_and_keeps_the_good_one(tmp_path: Path) -> None:
    write_video(tmp_path / "good.mp4", moving_frames(12), 8)
    videos = [entry("good", "good.mp4")]
    for index, case in enumerate(sorted(BAD_VIDEOS)):
        videos.append(entry(f"bad-{index}", BAD_VIDEOS[case][0](tmp_path)))
    clips, metadata = ingest_references({"videos": videos}, VIDEO, ingest_params(tmp_path, on_error="skip"))
    assert list(clips) == ["good"] and metadata["name"].tolist() == ["good"]
    assert clips["good"].frames.shape == (NUM_FRAMES, VIDEO["height"], VIDEO["width"], 3)


def test_a_declared_size_over_the_limit_is_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crafted header must not make the probe allocate a frame of that size."""
    path = tmp_path / huge_declared_size(tmp_path)
    real_open = av.open

    class NoDecode:
        def __init__(self, container):
            self._container = container

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._container.close()

        def __getattr__(self, name):
            if name == "decode":
                raise AssertionError("the probe decoded a video whose declared size is over max_side")
            return getattr(self._container, name)

    monkeypatch.setattr(av, "open", lambda *args, **kwargs: NoDecode(real_open(*args, **kwargs)))
    info = probe_video(path, max_side=SHIPPED["ingest"]["rules"]["max_side"])
    assert (info.readable, info.width, info.height, info.num_frames) == (True, 8320, 8320, 1)


@pytest.mark.parametrize(
    ("prompt", "rule"),
    [("", "prompt is missing or empty"), ("   ", "prompt is missing or empty")],
    ids=["empty", "blank"],
)
def test_empty_prompt(tmp_path: Path, prompt: str, rule: str) -> None:
    write_video(tmp_path / "good.mp4", moving_frames(12), 8)
    with pytest.raises(VideoValidationError) as error:
        ingest_references({"videos": [entry("good", "good.mp4", prompt=prompt)]}, VIDEO, ingest_params(tmp_path))
    assert error.value.messages == [f"{tmp_path / 'good.mp4'}: {rule}"]


def test_path_outside_the_manifest_folder(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    write_video(tmp_path / "elsewhere.mp4", moving_frames(12), 8)
    with pytest.raises(ManifestError) as error:
        ingest_references({"videos": [entry("out", "../elsewhere.mp4")]}, VIDEO, ingest_params(tmp_path / "raw"))
    assert str(error.value) == (
        f"manifest entry 'out': path '../elsewhere.mp4' points outside the manifest folder {tmp_path / 'raw'} "
        "(write an absolute path to use a file elsewhere)"
    )


def test_non_ascii_file_name_is_read_and_named_in_errors(tmp_path: Path) -> None:
    write_video(tmp_path / "café_ダンス.mp4", moving_frames(12), 8)
    clips, metadata = ingest_references({"videos": [entry("dance", "café_ダンス.mp4")]}, VIDEO, ingest_params(tmp_path))
    assert clips["dance"].frames.shape[0] == NUM_FRAMES
    assert metadata.loc[0, "source_path"].endswith("café_ダンス.mp4")
    (tmp_path / "évian_空.mp4").write_bytes(b"")
    with pytest.raises(VideoValidationError) as error:
        ingest_references({"videos": [entry("empty", "évian_空.mp4")]}, VIDEO, ingest_params(tmp_path))
    assert error.value.messages == [f"{tmp_path / 'évian_空.mp4'}: unreadable video (empty file)"]


def write_variable_rate_mp4(path: Path, times_ms: list[int]) -> None:
    """Frame i is filled with grey level 20*i and shown from times_ms[i]."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for index, time_ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = time_ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_variable_frame_rate_is_read_as_the_frames_on_screen_at_a_constant_rate(tmp_path: Path) -> None:
    """Index-based resampling assumes constant spacing; a VFR clip is turned into one at its average rate."""
    times_ms = [0, 100, 150, 400, 450, 500, 800, 1000, 1100, 1300, 1350, 1600]
    path = tmp_path / "vfr.mp4"
    write_variable_rate_mp4(path, times_ms)
    frames, fps = read_video(path)
    assert 12 / 1.8 < fps < 12 / 1.5  # FFmpeg's average rate: frames / duration (last frame's length is a guess)
    ticks_ms = np.arange(frames.shape[0]) * 1000.0 / fps
    on_screen = np.searchsorted(np.asarray(times_ms), ticks_ms + 1e-3, side="right") - 1
    assert frames.shape[0] == int(1.6 * fps) + 1
    assert np.abs(frames.mean(axis=(1, 2, 3)) - 20 * on_screen).max() < 2
    assert probe_video(path).num_frames == frames.shape[0]


def test_constant_rate_video_is_read_frame_for_frame(tmp_path: Path) -> None:
    frames = moving_frames(12)
    write_video(tmp_path / "steady.mp4", frames, 8, crf=0)
    read, fps = read_video(tmp_path / "steady.mp4")
    assert (read.shape[0], fps) == (12, 8.0)


def shipped_parameters() -> dict:
    params: dict = {}
    for path in sorted((REPO_ROOT / "conf/base").glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()) or {})
    return params


def test_over_long_target_prompt_fails_before_any_clip_is_encoded(project_root: Path) -> None:
    from motiontune.pipelines.encode.nodes import encode_references
    from motiontune.sampling.latents import PromptError

    params = shipped_parameters()
    long_prompt = " ".join(["a red ball rolling to the right on a gray floor"] * 12)
    metadata = pd.DataFrame([{"name": "clip", "train_prompt": "a ball rolling", "target_prompts": f"a cat | {long_prompt}"}])

    def clip_must_not_be_loaded():
        raise AssertionError("encode started before checking every prompt")

    backbone = {**params["backbone"], "pretrained_model": str(project_root / params["backbone"]["pretrained_model"])}
    with pytest.raises(PromptError) as error:
        encode_references({"clip": clip_must_not_be_loaded}, metadata, backbone, params["encode"])
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"prompt '{long_prompt[:60]}...': ")
    assert message.endswith("tokens, more than the text encoder takes (77)")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"train": {"method": "dreambooth"}}, "train.method: 'dreambooth' is not one of"),
        ({"train": {"learning_rate": -1.0}}, "train.learning_rate: must be positive, got -1.0"),
        ({"train": {"steps": 0}}, "train.steps: must be at least 1, got 0"),
        ({"generate": {"blend_strength": 2.0}}, "generate.blend_strength: must be in [0, 1], got 2.0"),
        ({"video": {"num_frames": 0}}, "video.num_frames: must be a positive integer, got 0"),
        ({"evaluate": {"tracker": "magic"}}, "evaluate.tracker: 'magic' is not one of"),
        ({"evaluate": {"clip": {"model": "data/06_models/clip/nowhere"}}}, "evaluate.clip.model: data/06_models/clip/nowhere is neither"),
        ({"train": {"stpes": 5}}, "train.stpes: unknown key (did you mean 'steps'?)"),
        ({"generate": {"guidance": 3}}, "generate.guidance: unknown key (did you mean 'guidance_scale'?)"),
        ({"train": {"motion_embedding": {"blocks": "deep"}}}, "train.motion_embedding: unknown key (did you mean 'motion_embeddings'?)"),
        # the block of a method other than train.method is checked too (benchmarks train every method)
        ({"train": {"vmc": {"training": {"stps": 3}}}}, "train.vmc.training"),
    ],
    ids=["unknown-method", "negative-learning-rate", "zero-steps", "blend-strength", "zero-frames", "unknown-tracker", "missing-clip",
         "train-key-typo", "generate-key-typo", "method-block-typo", "other-method-block-typo"],
)
def test_unknown_method_and_out_of_range_parameters_are_named(override: dict, expected: str) -> None:
    from motiontune.parameters import ParameterError, check_parameters

    params = shipped_parameters()
    check_parameters(params)  # the shipped configuration itself is valid
    for section, values in override.items():
        params[section] = {**params[section], **values}
    with pytest.raises(ParameterError) as error:
        check_parameters(params)
    lines = str(error.value).splitlines()
    assert lines[0] == "invalid parameters:"
    assert any(line.strip().startswith(expected) for line in lines[1:]), lines
