"""Tests for the metrics table and its Markdown rendering, on hand-written metrics files.

The dicts follow the layout of ``motiontune.metrics.evaluation.evaluate_motion``.
"""

from __future__ import annotations

import math

import pandas as pd

from motiontune.metrics.report import markdown_table, metrics_table

NOT_COMPUTED = {
    "clip_text_similarity": "no CLIP model in this pipeline yet",
    "fid": "no reference image set configured",
}


def _video(video: str, prompt: str, fidelity: float, tracks: int, warning: str | None = None) -> dict:
    return {
        "video": video,
        "prompt": prompt,
        "motion_fidelity": fidelity,
        "num_reference_tracks": tracks,
        "warning": warning,
    }


REPORTS = {
    # deliberately not in sorted order: the table sorts motions
    "zoom": {
        "videos": [_video("zoom_0", "a car | zooming", 0.5, 12, "few tracks")],
        "mean": {"motion_fidelity": 0.5},
        "models": {"motion_fidelity": "opencv_lk"},
        "not_computed": NOT_COMPUTED,
    },
    "pan": {
        "videos": [_video("pan_0", "a dog running", 0.9, 40), _video("pan_1", "a cat running", 0.7, 40)],
        "mean": {"motion_fidelity": 0.8},
        "models": {"motion_fidelity": "opencv_lk"},
        "not_computed": NOT_COMPUTED,
    },
}


def test_metrics_table_rows_columns_and_means() -> None:
    table = metrics_table(REPORTS)
    assert list(table.columns) == [
        "motion", "kind", "video", "prompt", "motion_fidelity", "num_reference_tracks", "warning",
        "clip_text_similarity", "fid",
    ]  # fmt: skip
    assert table["motion"].tolist() == ["pan", "pan", "pan", "zoom", "zoom"]
    assert table["kind"].tolist() == ["video", "video", "mean", "video", "mean"]
    assert table["video"].tolist() == ["pan_0", "pan_1", "mean", "zoom_0", "mean"]
    assert table["prompt"].tolist()[:2] == ["a dog running", "a cat running"]
    assert table["motion_fidelity"].tolist() == [0.9, 0.7, 0.8, 0.5, 0.5]
    # metrics that were not computed still have a column, empty everywhere
    assert table["clip_text_similarity"].isna().all() and table["fid"].isna().all()
    # integer counts stay integers; the mean row has none
    assert str(table["num_reference_tracks"].dtype) == "Int64"
    assert table["num_reference_tracks"].tolist()[:2] == [40, 40]
    assert table["num_reference_tracks"].isna().tolist() == [False, False, True, False, True]


def test_markdown_table_by_hand() -> None:
    table = pd.DataFrame(
        {
            "video": ["a|b", "c"],
            "score": [0.123456, math.nan],
            "count": pd.array([3, None], dtype="Int64"),
        }
    )
    expected = (
        "| video | score | count |\n"
        "| --- | ---: | ---: |\n"
        "| a\\|b | 0.1235 | 3 |\n"
        "| c | n/a | n/a |\n"
    )
    assert markdown_table(table) == expected


def test_markdown_table_of_metrics_table_has_one_line_per_row() -> None:
    text = markdown_table(metrics_table(REPORTS), float_digits=2)
    lines = text.splitlines()
    assert len(lines) == 2 + 5
    assert lines[0].startswith("| motion | kind | video | prompt | motion_fidelity |")
    assert "| pan | mean | mean |  | 0.80 | n/a | n/a | n/a | n/a |" in lines
    assert "a car \\| zooming" in text
