"""Read, probe, resample, resize and write short RGB videos.

Frames are always ``uint8`` arrays of shape ``(F, H, W, 3)`` in RGB order.
Containers (mp4, mov, webm, mkv, avi, gif) go through PyAV (FFmpeg); a folder of
still images (png, jpg, jpeg, webp) is read with Pillow.  Every error caused by
the input itself is a :class:`VideoInputError` whose message is one line,
``"<path>: <rule>"``, never a traceback from FFmpeg.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from motiontune.errors import UserError
from motiontune.io.atomic import write_atomically

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")
FRAME_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")

# Fraction.limit_denominator bound for fps values: keeps NTSC rates such as
# 30000/1001 exact while turning float noise (12.000000001) into 12.
_MAX_FPS_DENOMINATOR = 1001


class VideoInputError(ValueError, UserError):
    """A reference video breaks a rule; ``str(err)`` is ``"<path>: <rule>"``."""

    def __init__(self, path: str | os.PathLike[str], rule: str) -> None:
        self.path = str(path)
        self.rule = rule
        super().__init__(f"{self.path}: {rule}")


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learned about one input (no pixel data).

    ``readable`` is False when the input cannot be decoded; ``error`` then says
    why and the numeric fields are 0.
    """

    path: str
    readable: bool
    num_frames: int
    fps: float
    height: int
    width: int
    error: str | None


# --------------------------------------------------------------------------- reading


def _natural_key(name: str) -> list[int | str]:
    """Sort key that orders ``frame_2`` before ``frame_10`` (zero padding optional)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _list_frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in name order (numbers compared numerically)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _av_reason(exc: BaseException) -> str:
    """Short, path-free reason from an FFmpeg/PyAV exception."""
    strerror = getattr(exc, "strerror", None)
    reason = strerror if isinstance(strerror, str) and strerror else str(exc)
    return reason.strip().rstrip(".").lower() or type(exc).__name__


def _check_file(path: Path) -> None:
    """Reject missing, empty and unsupported container files before FFmpeg sees them."""
    if not path.exists():
        raise VideoInputError(path, "unreadable video (file not found)")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        supported = ", ".join(s.lstrip(".") for s in VIDEO_SUFFIXES)
        raise VideoInputError(
            path,
            f"unreadable video (unsupported file type '{path.suffix}'; "
            f"expected {supported} or a folder of frames)",
        )
    if path.stat().st_size == 0:
        raise VideoInputError(path, "unreadable video (empty file)")


def _fps_from_stream(stream: av.video.stream.VideoStream, timestamps: list[float]) -> float:
    """Stream average rate, else the mean spacing of decoded frame timestamps, else 0."""
    rate = stream.average_rate
    if rate is not None and float(rate) > 0:
        return float(rate)
    # Some muxers (raw streams, odd GIFs) leave the rate unset: the frame times still tell it.
    if len(timestamps) >= 2 and timestamps[-1] > timestamps[0]:
        return (len(timestamps) - 1) / (timestamps[-1] - timestamps[0])
    return 0.0


def _constant_rate_indices(timestamps: list[float], fps: float) -> np.ndarray | None:
    """For a variable-frame-rate clip, the frame shown at each tick of a ``fps`` clock, else None.

    A player holds each frame until the next one's timestamp; sampling that at a constant rate gives the
    clip as it looks, which is what frame-index resampling downstream assumes. Clips whose frame spacing
    varies by less than half a tick are left as they are (timestamp rounding, not variable rate).
    """
    if fps <= 0 or len(timestamps) < 3:
        return None
    times = np.asarray(timestamps, dtype=np.float64)
    spacing = np.diff(times)
    if spacing.min() <= 0 or np.ptp(spacing) < 0.5 / fps:
        return None
    ticks = times[0] + np.arange(int(np.floor((times[-1] - times[0]) * fps + 1e-6)) + 1) / fps
    return np.searchsorted(times, ticks + 1e-6, side="right") - 1


def _decode_container(
    path: Path, keep_pixels: bool, max_side: int | None = None
) -> tuple[list[np.ndarray], int, float, int, int]:
    """Decode every frame of a container file.

    Returns (frames, num_frames, fps, height, width); ``frames`` is empty unless
    ``keep_pixels``.  Frame counts come from decoding because container headers
    are often wrong or missing. A variable-frame-rate clip comes back at its
    average rate (see :func:`_constant_rate_indices`). With ``max_side`` set, a
    stream whose declared size exceeds it is not decoded (a crafted header must
    not allocate gigabytes): the header's size and frame count come back instead.
    """
    _check_file(path)
    frames: list[np.ndarray] = []
    timestamps: list[float] = []
    all_timed = True
    height = width = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoInputError(path, "unreadable video (no video stream)")
            stream = container.streams.video[0]
            context = stream.codec_context  # None when the stream's codec parameters are unreadable
            declared = (int(getattr(context, "height", 0) or 0), int(getattr(context, "width", 0) or 0))
            if max_side is not None and max(declared) > max_side:
                return [], int(stream.frames or 0), _fps_from_stream(stream, []), *declared
            for frame in container.decode(stream):
                if not timestamps:
                    height, width = frame.height, frame.width
                elif (frame.height, frame.width) != (height, width):
                    raise VideoInputError(
                        path,
                        f"unreadable video (frame size changes from {width}x{height} "
                        f"to {frame.width}x{frame.height})",
                    )
                all_timed = all_timed and frame.time is not None
                timestamps.append(float(frame.time) if frame.time is not None else float(len(timestamps)))
                if keep_pixels:
                    # rgb24 conversion also resolves GIF palettes and drops alpha.
                    frames.append(frame.to_ndarray(format="rgb24"))
            fps = _fps_from_stream(stream, timestamps)
    except VideoInputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoInputError(path, f"unreadable video ({_av_reason(exc)})") from None
    if not timestamps:
        raise VideoInputError(path, "unreadable video (contains no frames)")
    indices = _constant_rate_indices(timestamps, fps) if all_timed else None
    if indices is None:
        return frames, len(timestamps), fps, height, width
    return [frames[i] for i in indices] if keep_pixels else [], len(indices), fps, height, width


def _open_frame_image(path: Path, folder: Path) -> Image.Image:
    """Open one still of a frame folder, or raise a one-line error naming it."""
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise VideoInputError(folder, f"unreadable video ({path.name}: {reason})") from None


def _iter_folder(folder: Path, keep_pixels: bool) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """Yield (height, width, rgb pixels or None) per frame file of a folder."""
    files = _list_frame_files(folder)
    if not files:
        supported = "/".join(s.lstrip(".") for s in FRAME_SUFFIXES)
        raise VideoInputError(folder, f"unreadable video (folder contains no {supported} frames)")
    for file in files:
        with _open_frame_image(file, folder) as image:
            pixels = None
            if keep_pixels:
                try:
                    # convert("RGB") resolves palettes and drops alpha, like rgb24 in FFmpeg.
                    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
                except OSError as exc:  # truncated or corrupt image data
                    raise VideoInputError(folder, f"unreadable video ({file.name}: {exc})") from None
            yield image.height, image.width, pixels


def _read_folder(folder: Path, keep_pixels: bool) -> tuple[list[np.ndarray], int, int, int]:
    """Read a frame folder; returns (frames, num_frames, height, width)."""
    frames: list[np.ndarray] = []
    count = height = width = 0
    for frame_height, frame_width, pixels in _iter_folder(folder, keep_pixels):
        if count == 0:
            height, width = frame_height, frame_width
        elif (frame_height, frame_width) != (height, width):
            raise VideoInputError(
                folder,
                f"unreadable video (frame {count} is {frame_width}x{frame_height}, "
                f"frame 0 is {width}x{height})",
            )
        if pixels is not None:
            frames.append(pixels)
        count += 1
    return frames, count, height, width


def probe_video(path: str | os.PathLike[str], frames_fps: float = 8.0, max_side: int | None = None) -> VideoInfo:
    """Decode ``path`` once to learn frame count, fps and size; never raises for bad input.

    ``path`` is a video file or a folder of frames; ``frames_fps`` is the rate
    assumed for a folder, which has none of its own. A video whose declared
    size exceeds ``max_side`` is reported from its header without decoding.
    """
    path = Path(path)
    try:
        if path.is_dir():
            _, num_frames, height, width = _read_folder(path, keep_pixels=False)
            fps = float(frames_fps)
        else:
            _, num_frames, fps, height, width = _decode_container(path, keep_pixels=False, max_side=max_side)
    except VideoInputError as exc:
        # The rule reads "unreadable video (<reason>)": keep only the reason.
        match = re.fullmatch(r"unreadable video \((.*)\)", exc.rule, flags=re.DOTALL)
        reason = match.group(1) if match else exc.rule
        return VideoInfo(str(path), False, 0, 0.0, 0, 0, reason)
    return VideoInfo(str(path), True, num_frames, fps, height, width, None)


def read_video(path: str | os.PathLike[str], frames_fps: float = 8.0) -> tuple[np.ndarray, float]:
    """Read all frames of a video file or frame folder.

    Returns ``(frames, fps)`` with frames ``uint8 (F, H, W, 3)`` RGB. Palettes
    (GIF) and alpha are converted to plain RGB (alpha is dropped, not blended).
    A folder's frames are its png/jpg/jpeg/webp files sorted by name (numbers
    compared numerically) played at ``frames_fps``.

    Raises VideoInputError("<path>: unreadable video (<reason>)") for missing,
    empty, truncated, non-video or frameless inputs.
    """
    path = Path(path)
    if path.is_dir():
        if frames_fps <= 0:
            raise VideoInputError(path, f"a folder of frames needs fps > 0, got {frames_fps}")
        frames, _, _, _ = _read_folder(path, keep_pixels=True)
        fps = float(frames_fps)
    else:
        frames, _, fps, _, _ = _decode_container(path, keep_pixels=True)
    if fps <= 0:
        raise VideoInputError(path, "unreadable video (frame rate unknown)")
    return np.stack(frames).astype(np.uint8, copy=False), fps


# --------------------------------------------------------------------------- transforms


def _round_half_up(values: np.ndarray) -> np.ndarray:
    """Round .5 upwards (np.round rounds half to even, which skews regular index grids)."""
    return np.floor(values + 0.5).astype(np.int64)


def resample_indices(
    num_source_frames: int,
    source_fps: float,
    num_frames: int,
    target_fps: float | None,
) -> np.ndarray:
    """Indices (num_frames,) into a clip of ``num_source_frames``; see :func:`resample_frames`."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if source_fps <= 0:
        raise ValueError(f"source_fps must be > 0, got {source_fps}")
    if target_fps is not None:
        if target_fps <= 0:
            raise ValueError(f"target_fps must be > 0 or None, got {target_fps}")
        time_based = _round_half_up(np.arange(num_frames) * (source_fps / target_fps))
        if time_based[-1] <= num_source_frames - 1:
            return time_based
    # No target rate, or the clip is too short at it: spread over the whole clip.
    return _round_half_up(np.linspace(0.0, num_source_frames - 1, num_frames))


def resample_frames(
    frames: np.ndarray,
    source_fps: float,
    num_frames: int,
    target_fps: float | None,
    *,
    path: str | os.PathLike[str] = "<frames>",
) -> np.ndarray:
    """Pick ``num_frames`` frames of ``frames`` (F, H, W, C) -> (num_frames, H, W, C).

    - ``target_fps`` given: sample at that rate from the first frame, index
      ``i -> round(i * source_fps / target_fps)`` (halves round up). A target
      above the source rate repeats frames.
    - If that window runs past the end of the clip, or ``target_fps`` is None:
      ``num_frames`` evenly spaced indices over the whole clip (first and last
      frame included).

    Rule: the clip must have at least ``num_frames`` frames, otherwise
    VideoInputError("<path>: has N frames, fewer than num_frames=M"); ``path``
    only names the clip in that message.
    """
    num_source_frames = int(frames.shape[0])
    if num_source_frames < num_frames:
        raise VideoInputError(path, f"has {num_source_frames} frames, fewer than num_frames={num_frames}")
    return frames[resample_indices(num_source_frames, source_fps, num_frames, target_fps)]


def resize_center_crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale (F, H, W, C) frames so the short side covers the target, then center-crop.

    Returns (F, height, width, C) with the input dtype. Downscaling uses area
    averaging (no aliasing), upscaling bicubic.
    """
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape (F, H, W, C), got {frames.shape}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    source_height, source_width = int(frames.shape[1]), int(frames.shape[2])
    scale = max(height / source_height, width / source_width)
    # max() guards against round() landing one pixel short of the target.
    scaled_height = max(height, round(source_height * scale))
    scaled_width = max(width, round(source_width * scale))
    if (scaled_height, scaled_width) == (source_height, source_width):
        scaled = frames
    else:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        scaled = np.stack(
            [cv2.resize(frame, (scaled_width, scaled_height), interpolation=interpolation) for frame in frames]
        )
        if scaled.ndim == 3:  # cv2 drops a trailing channel axis of size 1
            scaled = scaled[..., None]
    top = (scaled_height - height) // 2
    left = (scaled_width - width) // 2
    return np.ascontiguousarray(scaled[:, top : top + height, left : left + width])


# --------------------------------------------------------------------------- writing


def _check_frames_to_write(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must have shape (F>=1, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Write uint8 (F, H, W, 3) RGB frames as an H.264 yuv420p mp4; returns ``path``.

    The file is encoded to a temporary sibling and renamed into place, so a crash
    never leaves a partial file under the final name. H and W must be even
    (yuv420p subsamples chroma by 2). ``crf`` is x264's quality (0 lossless,
    18 visually lossless, 23 default).
    """
    path = Path(path)
    frames = np.asarray(frames)
    _check_frames_to_write(frames)
    height, width = int(frames.shape[1]), int(frames.shape[2])
    if height % 2 or width % 2:
        raise ValueError(f"{path}: H.264 yuv420p needs even height and width, got {width}x{height}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"{path}: fps must be a positive number, got {fps}")

    def encode(temporary: Path) -> None:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(_MAX_FPS_DENOMINATOR))
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(int(crf))}
            for frame in frames:
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode(None))  # flush the encoder's delayed frames

    write_atomically(path, encode)
    return path


def write_gif(path: str | os.PathLike[str], frames: np.ndarray, fps: float) -> Path:
    """Write uint8 (F, H, W, 3) RGB frames as a looping GIF (atomic, like write_video).

    GIF stores frame delays in 1/100 s and colours in a 256-entry palette per
    frame, so the read-back fps is the nearest representable one (12 -> 12.5)
    and colours are approximate.
    """
    path = Path(path)
    frames = np.asarray(frames)
    _check_frames_to_write(frames)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"{path}: fps must be a positive number, got {fps}")
    images = [Image.fromarray(frame) for frame in frames]
    write_atomically(
        path,
        lambda temporary: images[0].save(
            temporary, format="GIF", save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0
        ),
    )
    return path
