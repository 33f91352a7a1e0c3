"""Tests for motiontune.io.video: round trips, resampling, cropping, atomic writes, bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from motiontune.io import video as video_module
from motiontune.io.video import (
    VideoInputError,
    probe_video,
    read_video,
    resample_frames,
    resize_center_crop,
    write_gif,
    write_video,
)

NUM_FRAMES, HEIGHT, WIDTH = 10, 32, 48
RED, BLUE = (220, 30, 30), (30, 30, 220)


def grey_ramp_frames() -> np.ndarray:
    """Frame i is flat grey 20 + 20 * i, with a red left and blue right band in the top rows."""
    frames = np.empty((NUM_FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(NUM_FRAMES):
        frames[i] = 20 + 20 * i
    frames[:, :8, :16] = RED
    frames[:, :8, 32:] = BLUE
    return frames


def assert_matches_ramp(frames: np.ndarray, tolerance: int) -> None:
    assert frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert frames.dtype == np.uint8
    for i in range(NUM_FRAMES):
        # Centre of the grey area, away from chroma-subsampled edges.
        assert abs(float(frames[i, 20:, 8:40].mean()) - (20 + 20 * i)) <= tolerance, i
        assert np.all(np.abs(frames[i, 4, 6].astype(int) - RED) <= tolerance + 6), frames[i, 4, 6]
        assert np.all(np.abs(frames[i, 4, 40].astype(int) - BLUE) <= tolerance + 6), frames[i, 4, 40]


def write_webm(path: Path, frames: np.ndarray, fps: int) -> None:
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "10", "b:v": "0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


# --------------------------------------------------------------------------- round trips


def test_mp4_round_trip(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", grey_ramp_frames(), fps=12)
    frames, fps = read_video(path)
    assert fps == pytest.approx(12.0)
    assert_matches_ramp(frames, tolerance=3)


def test_webm_round_trip(tmp_path: Path) -> None:
    write_webm(tmp_path / "clip.webm", grey_ramp_frames(), fps=24)
    frames, fps = read_video(tmp_path / "clip.webm")
    assert fps == pytest.approx(24.0)
    assert_matches_ramp(frames, tolerance=4)


def test_gif_round_trip(tmp_path: Path) -> None:
    write_gif(tmp_path / "clip.gif", grey_ramp_frames(), fps=10)
    frames, fps = read_video(tmp_path / "clip.gif")
    assert fps == pytest.approx(10.0)  # 100 ms per frame is exactly representable in 1/100 s
    assert_matches_ramp(frames, tolerance=4)


def test_palette_gif_is_read_as_rgb(tmp_path: Path) -> None:
    palette_frames = []
    for colour in (RED, BLUE, (0, 255, 0)):
        image = Image.new("P", (20, 16))
        image.putpalette([*colour, 0, 0, 0] + [0] * (256 * 3 - 6))
        palette_frames.append(image)  # every pixel is palette index 0
    palette_frames[0].save(tmp_path / "p.gif", save_all=True, append_images=palette_frames[1:], duration=100)
    frames, _ = read_video(tmp_path / "p.gif")
    assert frames.shape == (3, 16, 20, 3)
    assert tuple(frames[0, 8, 10]) == RED
    assert tuple(frames[1, 8, 10]) == BLUE
    assert tuple(frames[2, 8, 10]) == (0, 255, 0)


def test_folder_of_frames_sorted_by_number_and_rgba_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    # Unpadded numbers: name order would put frame_10 before frame_2.
    for index in (1, 2, 10):
        Image.new("RGBA", (24, 16), (index * 20, 0, 0, 128)).save(folder / f"frame_{index}.png")
    (folder / "notes.txt").write_text("not a frame")
    frames, fps = read_video(folder, frames_fps=6.0)
    assert fps == 6.0
    assert frames.shape == (3, 16, 24, 3)
    assert [int(frames[i, 0, 0, 0]) for i in range(3)] == [20, 40, 200]
    assert tuple(frames[0, 0, 0]) == (20, 0, 0)
    info = probe_video(folder, frames_fps=6.0)
    assert (info.readable, info.num_frames, info.fps, info.height, info.width) == (True, 3, 6.0, 16, 24)


def test_probe_counts_decoded_frames(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", grey_ramp_frames(), fps=25)
    info = probe_video(path)
    assert info == video_module.VideoInfo(str(path), True, NUM_FRAMES, 25.0, HEIGHT, WIDTH, None)


# --------------------------------------------------------------------------- resample


def indexed_frames(count: int) -> np.ndarray:
    """(count, 1, 1, 1) frames whose only pixel is the frame's index."""
    return np.arange(count, dtype=np.uint8).reshape(count, 1, 1, 1)


def picked(frames: np.ndarray) -> list[int]:
    return [int(v) for v in frames[:, 0, 0, 0]]


def test_resample_at_target_fps_integer_ratio() -> None:
    assert picked(resample_frames(indexed_frames(30), 24.0, 4, target_fps=8.0)) == [0, 3, 6, 9]


def test_resample_at_target_fps_fractional_ratio_rounds_half_up() -> None:
    # 12 -> 8 fps: i * 1.5 = 0, 1.5, 3, 4.5, 6, 7.5, 9, 10.5
    assert picked(resample_frames(indexed_frames(12), 12.0, 8, target_fps=8.0)) == [0, 2, 3, 5, 6, 8, 9, 11]


def test_resample_falls_back_to_even_spacing_when_clip_too_short() -> None:
    # 24 -> 8 fps would need frame 12 of a 10-frame clip; linspace(0, 9, 5) = 0, 2.25, 4.5, 6.75, 9
    assert picked(resample_frames(indexed_frames(10), 24.0, 5, target_fps=8.0)) == [0, 2, 5, 7, 9]


def test_resample_without_target_fps_spans_whole_clip() -> None:
    assert picked(resample_frames(indexed_frames(7), 30.0, 4, target_fps=None)) == [0, 2, 4, 6]


def test_resample_rejects_too_few_frames() -> None:
    with pytest.raises(VideoInputError) as caught:
        resample_frames(indexed_frames(3), 12.0, 8, target_fps=None, path="data/01_raw/x.mp4")
    assert str(caught.value) == "data/01_raw/x.mp4: has 3 frames, fewer than num_frames=8"


# --------------------------------------------------------------------------- resize


def test_resize_center_crop_downscale_keeps_centre_and_crops_sides() -> None:
    source = np.zeros((2, 80, 96, 3), np.uint8)
    source[:, 36:44, 44:52] = (200, 100, 50)  # 8x8 block around the centre (40, 48)
    source[:, :, :4] = (0, 255, 0)  # left edge band, outside the central 80x80 square
    out = resize_center_crop(source, 64, 64)
    assert out.shape == (2, 64, 64, 3)
    assert out.dtype == np.uint8
    assert tuple(out[0, 32, 32]) == (200, 100, 50)
    assert not np.any(out[..., 1] > 200)  # the green band was cropped away


def test_resize_center_crop_upscale_non_square() -> None:
    source = np.zeros((1, 20, 30, 3), np.uint8)
    source[:, 8:12, 13:17] = 255  # centre (10, 15)
    out = resize_center_crop(source, 40, 48)
    assert out.shape == (1, 40, 48, 3)
    assert tuple(out[0, 20, 24]) == (255, 255, 255)
    assert tuple(out[0, 0, 0]) == (0, 0, 0)


def test_resize_center_crop_portrait_crops_top_and_bottom() -> None:
    source = np.zeros((1, 90, 30, 3), np.uint8)
    source[:, :10] = (0, 255, 0)  # top band: outside the central 30 rows
    source[:, -10:] = (0, 0, 255)  # bottom band
    source[:, 43:48, 13:18] = (255, 255, 255)  # block around the centre (45, 15)
    out = resize_center_crop(source, 30, 30)
    assert out.shape == (1, 30, 30, 3)
    assert tuple(out[0, 15, 15]) == (255, 255, 255)
    # Only the black field and the white block survive: both coloured bands were cropped.
    assert {tuple(pixel) for pixel in out.reshape(-1, 3)} == {(0, 0, 0), (255, 255, 255)}


# --------------------------------------------------------------------------- writing


def test_write_video_is_atomic_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.mp4"
    assert write_video(target, grey_ramp_frames(), fps=8) == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.mp4"]


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.mp4"
    write_video(target, grey_ramp_frames(), fps=8)
    before = target.read_bytes()
    calls = {"count": 0}
    original_from_ndarray = av.VideoFrame.from_ndarray

    def crash_on_fifth_frame(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 5:
            raise RuntimeError("simulated crash while encoding")
        return original_from_ndarray(*args, **kwargs)

    monkeypatch.setattr(video_module.av.VideoFrame, "from_ndarray", crash_on_fifth_frame)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_video(target, grey_ramp_frames()[::-1].copy(), fps=8)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_write_video_rejects_odd_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"even height and width, got 48x31"):
        write_video(tmp_path / "odd.mp4", grey_ramp_frames()[:, :31], fps=8)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- unreadable input


def make_zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def make_text_file(path: Path) -> Path:
    path.write_text("this is not a video\n" * 20)
    return path


def make_truncated_mp4(path: Path) -> Path:
    write_video(path, grey_ramp_frames(), fps=8)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (make_zero_byte, "empty file"),
        (make_text_file, "invalid data found when processing input"),
        (make_truncated_mp4, "invalid data found when processing input"),
    ],
    ids=["zero-byte", "text", "truncated"],
)
def test_unreadable_inputs_raise_one_line_error(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(VideoInputError) as caught:
        read_video(path)
    assert str(caught.value) == f"{path}: unreadable video ({reason})"
    assert caught.value.path == str(path)
    assert caught.value.__cause__ is None  # no chained FFmpeg traceback
    info = probe_video(path)
    assert (info.readable, info.num_frames, info.error) == (False, 0, reason)


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(VideoInputError, match=r"missing\.mp4: unreadable video \(file not found\)"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoInputError, match=r"empty: unreadable video \(folder contains no png/jpg/jpeg/webp"):
        read_video(tmp_path / "empty")


def test_unsupported_extension_and_non_image_frame(tmp_path: Path) -> None:
    (tmp_path / "clip.txt").write_text("x")
    with pytest.raises(VideoInputError, match=r"unsupported file type '\.txt'"):
        read_video(tmp_path / "clip.txt")
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "frame_000.png").write_text("not a png")
    assert probe_video(folder).error == "frame_000.png: not an image"
