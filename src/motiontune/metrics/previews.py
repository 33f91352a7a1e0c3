"""Preview images and videos for eyeballing results: reference next to generated videos, contact sheets.

All frames are uint8 RGB, videos (F, H, W, 3), images (H, W, 3). Labels are drawn with OpenCV's Hershey
font on a header strip above each panel, so no font files are needed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from motiontune.io.atomic import write_atomically
from motiontune.io.video import resample_indices

Color = tuple[int, int, int]

# OpenCV's Hershey glyphs are about 22 px tall at font scale 1; the header's font scale is derived from it.
_HERSHEY_GLYPH_HEIGHT = 22.0


def _check_video(name: str, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise ValueError(f"{name}: frames must be uint8 (F>=1, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


def nearest_frame_indices(num_source_frames: int, num_frames: int) -> np.ndarray:
    """Indices (num_frames,) picking, for each output frame, the source frame nearest in relative time.

    Spread evenly over the whole clip, first and last frame included (halves round up).
    """
    # The rate does not matter when no target rate is given: indices span the whole clip.
    return resample_indices(num_source_frames, source_fps=1.0, num_frames=num_frames, target_fps=None)


def resize_to_height(
    frames: np.ndarray,
    height: int,
    upscale_interpolation: int = cv2.INTER_NEAREST,
) -> np.ndarray:
    """Scale (F, H, W, 3) frames to ``height`` keeping the aspect ratio -> (F, height, W', 3).

    Shrinking uses area averaging; enlarging uses ``upscale_interpolation`` (nearest by default, so tiny
    generated videos stay crisp instead of turning to blur).
    """
    source_height, source_width = int(frames.shape[1]), int(frames.shape[2])
    if source_height == height:
        return frames
    width = max(1, round(source_width * height / source_height))
    interpolation = cv2.INTER_AREA if height < source_height else upscale_interpolation
    return np.stack([cv2.resize(frame, (width, height), interpolation=interpolation) for frame in frames])


def label_strip(
    text: str,
    width: int,
    height: int,
    background: Color = (32, 32, 32),
    text_color: Color = (255, 255, 255),
    margin: int = 2,
) -> np.ndarray:
    """A (height, width, 3) uint8 strip with ``text`` drawn on it, left-aligned.

    Text wider than the strip is clipped at its right edge. The font scale follows ``height``.
    """
    strip = np.empty((height, width, 3), dtype=np.uint8)
    strip[:] = background
    if height <= 2 * margin or not text:
        return strip
    font_scale = (height - 2 * margin) / _HERSHEY_GLYPH_HEIGHT
    thickness = max(1, round(font_scale))
    (_, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    # Centre the glyph box (cap height + descender) vertically.
    origin_y = (height + text_height - baseline) // 2
    cv2.putText(
        strip, text, (margin, origin_y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, text_color, thickness, cv2.LINE_AA
    )
    return strip


def _pad_to_even(frames: np.ndarray, fill: Color) -> np.ndarray:
    """Pad (..., H, W, 3) at the bottom/right to even H and W (H.264 yuv420p needs even sizes)."""
    height, width = frames.shape[-3], frames.shape[-2]
    pad_height, pad_width = height % 2, width % 2
    if not (pad_height or pad_width):
        return frames
    padded = np.empty((*frames.shape[:-3], height + pad_height, width + pad_width, 3), dtype=np.uint8)
    padded[:] = fill
    padded[..., :height, :width, :] = frames
    return padded


def side_by_side(
    reference: np.ndarray,
    generated: Sequence[tuple[str, np.ndarray]],
    reference_label: str = "reference",
    height: int | None = None,
    header_height: int = 16,
    separator_width: int = 2,
    separator_color: Color = (255, 255, 255),
    header_color: Color = (32, 32, 32),
    text_color: Color = (255, 255, 255),
    even_size: bool = True,
) -> np.ndarray:
    """The reference video and each generated video next to each other, one labelled panel each.

    Args:
        reference: uint8 (F, H, W, 3); sets the frame count and (unless ``height`` is given) the panel height.
        generated: ``[(label, frames (F_i, H_i, W_i, 3)), ...]``; each is resampled to F frames by nearest
            index and scaled to the panel height keeping its aspect ratio.
        reference_label: header text over the reference panel.
        height: panel height in pixels; None keeps the reference's own height (reference pixels untouched).
        header_height: height of the label strip above the panels (0: no labels).
        separator_width: columns of ``separator_color`` between panels.
        even_size: pad the bottom/right edge to even sizes, so the result can go straight to an H.264 writer.

    Returns:
        uint8 (F, header_height + H', W_total, 3) where H' is the panel height,
        ``W_total = sum(panel widths) + separator_width * len(generated)`` (+1 for even padding).
        Rows ``header_height:`` and columns ``:W`` hold the reference panel.
    """
    reference = _check_video("reference", reference)
    num_frames = reference.shape[0]
    panel_height = reference.shape[1] if height is None else height
    panels: list[tuple[str, np.ndarray]] = [(reference_label, resize_to_height(reference, panel_height))]
    for label, frames in generated:
        frames = _check_video(label, frames)
        frames = frames[nearest_frame_indices(frames.shape[0], num_frames)]
        panels.append((label, resize_to_height(frames, panel_height)))

    columns: list[np.ndarray] = []
    for index, (label, frames) in enumerate(panels):
        if index > 0 and separator_width > 0:
            separator = np.empty((num_frames, header_height + panel_height, separator_width, 3), dtype=np.uint8)
            separator[:] = separator_color
            columns.append(separator)
        width = frames.shape[2]
        header = label_strip(label, width, header_height, header_color, text_color)
        columns.append(np.concatenate([np.broadcast_to(header, (num_frames, *header.shape)), frames], axis=1))
    combined = np.ascontiguousarray(np.concatenate(columns, axis=2))
    return _pad_to_even(combined, separator_color) if even_size else combined


def contact_sheet(
    videos: Sequence[tuple[str, np.ndarray]],
    frames_per_video: int = 4,
    cell_height: int | None = None,
    header_height: int = 16,
    separator_width: int = 2,
    separator_color: Color = (255, 255, 255),
    header_color: Color = (32, 32, 32),
    text_color: Color = (255, 255, 255),
) -> np.ndarray:
    """One image: a row per video (label strip above it), columns = evenly sampled frames.

    Args:
        videos: ``[(label, frames (F_i, H_i, W_i, 3)), ...]``.
        frames_per_video: columns; frame indices spread evenly over each clip, first and last included
            (``round(linspace(0, F_i - 1, frames_per_video))``, halves up; short clips repeat frames).
        cell_height: height of every frame cell; None: the tallest video's height. Widths keep each
            video's aspect ratio; narrower rows are padded on the right with ``separator_color``.
        header_height: label strip above each row (0: no labels).
        separator_width: gap between cells and between rows.

    Returns:
        uint8 (R * (header_height + cell_height) + (R - 1) * separator_width, W, 3) for R videos, where W is
        the widest row, ``frames_per_video * cell_width + (frames_per_video - 1) * separator_width``.
    """
    if not videos:
        raise ValueError("contact_sheet: no videos")
    if frames_per_video < 1:
        raise ValueError(f"frames_per_video must be >= 1, got {frames_per_video}")
    checked = [(label, _check_video(label, frames)) for label, frames in videos]
    row_height = cell_height if cell_height is not None else max(frames.shape[1] for _, frames in checked)

    rows: list[np.ndarray] = []
    for _, frames in checked:
        cells = resize_to_height(frames[nearest_frame_indices(frames.shape[0], frames_per_video)], row_height)
        cell_width = cells.shape[2]
        row_width = frames_per_video * cell_width + (frames_per_video - 1) * separator_width
        row = np.empty((row_height, row_width, 3), dtype=np.uint8)
        row[:] = separator_color
        for column, cell in enumerate(cells):
            left = column * (cell_width + separator_width)
            row[:, left : left + cell_width] = cell
        rows.append(row)

    sheet_width = max(row.shape[1] for row in rows)
    blocks: list[np.ndarray] = []
    for index, ((label, _), row) in enumerate(zip(checked, rows)):
        if index > 0 and separator_width > 0:
            gap = np.empty((separator_width, sheet_width, 3), dtype=np.uint8)
            gap[:] = separator_color
            blocks.append(gap)
        blocks.append(label_strip(label, sheet_width, header_height, header_color, text_color))
        padded = np.empty((row_height, sheet_width, 3), dtype=np.uint8)
        padded[:] = separator_color
        padded[:, : row.shape[1]] = row
        blocks.append(padded)
    return np.ascontiguousarray(np.concatenate(blocks, axis=0))


def save_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write a uint8 (H, W, 3) RGB image as PNG atomically (temporary sibling + os.replace); returns ``path``."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    write_atomically(path, lambda temporary: Image.fromarray(image).save(temporary, format="PNG"))
    return Path(path)
