"""Tests for preview rendering: side-by-side videos, contact sheets, atomic PNG writing.

Frames are filled with a constant value that encodes their index, so which frame landed in which panel or
cell can be read back from the pixels and compared with indices worked out by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from motiontune.metrics.previews import contact_sheet, label_strip, save_png, side_by_side

HEADER = 16
SEPARATOR = 2
WHITE = (255, 255, 255)
HEADER_BACKGROUND = (32, 32, 32)


def _indexed_video(num_frames: int, height: int, width: int, offset: int = 0, step: int = 10) -> np.ndarray:
    """uint8 (F, H, W, 3) where every pixel of frame i has value offset + step * i."""
    values = offset + step * np.arange(num_frames)
    return np.broadcast_to(values[:, None, None, None], (num_frames, height, width, 3)).astype(np.uint8).copy()


def _textured_video(num_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(num_frames, height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- side by side


def test_side_by_side_shape_and_reference_panel_is_exact() -> None:
    reference = _textured_video(5, 20, 30, seed=0)
    generated = [("a", _indexed_video(8, 10, 12)), ("b", _textured_video(3, 40, 22, seed=1))]
    out = side_by_side(reference, generated, header_height=HEADER, separator_width=SEPARATOR, even_size=False)
    # panel widths at height 20: 30 (reference), 12 * 20/10 = 24, 22 * 20/40 = 11; two separators
    assert out.shape == (5, HEADER + 20, 30 + 24 + 11 + 2 * SEPARATOR, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, HEADER:, :30], reference)
    assert (out[:, :, 30 : 30 + SEPARATOR] == 255).all()


def test_side_by_side_even_size_pads_odd_width() -> None:
    reference = _textured_video(2, 20, 30, seed=2)
    generated = [("b", _textured_video(2, 40, 22, seed=3))]  # 11 px wide at height 20: total 30 + 2 + 11 = 43
    out = side_by_side(reference, generated, header_height=HEADER, separator_width=SEPARATOR)
    assert out.shape == (2, HEADER + 20, 44, 3)
    np.testing.assert_array_equal(out[:, HEADER:, :30], reference)


def test_side_by_side_resamples_generated_frames_by_nearest_index() -> None:
    reference = _textured_video(5, 20, 30, seed=4)
    generated = [("a", _indexed_video(8, 10, 12, step=10))]
    out = side_by_side(reference, generated, header_height=HEADER, separator_width=SEPARATOR)
    # 8 frames onto 5: linspace(0, 7, 5) = 0, 1.75, 3.5, 5.25, 7 -> nearest (halves up) 0, 2, 4, 5, 7
    panel = out[:, HEADER:, 30 + SEPARATOR : 30 + SEPARATOR + 24]
    assert [int(frame[0, 0, 0]) for frame in panel] == [0, 20, 40, 50, 70]
    assert all((frame == frame[0, 0, 0]).all() for frame in panel)


def test_side_by_side_draws_labels_in_the_header() -> None:
    reference = np.zeros((1, 20, 60, 3), dtype=np.uint8)
    unlabelled = side_by_side(reference, [], reference_label="", header_height=HEADER)
    labelled = side_by_side(reference, [], reference_label="reference", header_height=HEADER)
    assert (unlabelled[0, :HEADER] == HEADER_BACKGROUND).all()
    assert (labelled[0, :HEADER] != HEADER_BACKGROUND).any(axis=-1).sum() > 10


def test_side_by_side_height_scales_every_panel() -> None:
    reference = _textured_video(3, 10, 16, seed=5)
    out = side_by_side(reference, [("g", _textured_video(3, 5, 5, seed=6))], height=40, header_height=HEADER)
    # reference 16 * 4 = 64 wide, generated 5 * 8 = 40 wide, one separator
    assert out.shape == (3, HEADER + 40, 64 + SEPARATOR + 40, 3)


# --------------------------------------------------------------------------- contact sheet


def test_contact_sheet_rows_columns_and_sampled_frames() -> None:
    videos = [
        ("ten", _indexed_video(10, 12, 16, offset=0, step=10)),
        ("seven", _indexed_video(7, 12, 16, offset=1, step=10)),
        ("three", _indexed_video(3, 6, 8, offset=2, step=10)),  # scaled up to 12 x 16
    ]
    sheet = contact_sheet(videos, frames_per_video=4, header_height=HEADER, separator_width=SEPARATOR)
    cell_height, cell_width = 12, 16
    assert sheet.shape == (3 * (HEADER + cell_height) + 2 * SEPARATOR, 4 * cell_width + 3 * SEPARATOR, 3)
    # round-half-up linspace(0, F-1, 4): 10 -> 0,3,6,9; 7 -> 0,2,4,6; 3 -> 0,0.67,1.33,2 -> 0,1,1,2
    expected_indices = [[0, 3, 6, 9], [0, 2, 4, 6], [0, 1, 1, 2]]
    for row, (indices, offset) in enumerate(zip(expected_indices, (0, 1, 2))):
        top = row * (HEADER + cell_height + SEPARATOR)
        assert (sheet[top, -1] == HEADER_BACKGROUND).all(), f"row {row}: no label strip on top"
        for column, index in enumerate(indices):
            left = column * (cell_width + SEPARATOR)
            cell = sheet[top + HEADER : top + HEADER + cell_height, left : left + cell_width]
            assert (cell == offset + 10 * index).all(), f"row {row} column {column}"


def test_contact_sheet_rejects_empty_input() -> None:
    with pytest.raises(ValueError):
        contact_sheet([])


# --------------------------------------------------------------------------- png


def test_save_png_round_trips_and_leaves_no_temporary(tmp_path: Path) -> None:
    image = _textured_video(1, 9, 13, seed=7)[0]
    path = tmp_path / "previews" / "sheet.png"
    save_png(path, np.zeros_like(image))
    save_png(path, image)  # replaces the existing file
    with Image.open(path) as written:
        np.testing.assert_array_equal(np.asarray(written.convert("RGB")), image)
    assert sorted(p.name for p in path.parent.iterdir()) == ["sheet.png"]


def test_label_strip_clips_long_text() -> None:
    strip = label_strip("a very long label that cannot fit", width=20, height=HEADER)
    assert strip.shape == (HEADER, 20, 3)
