"""Tables of the per-motion metrics files (the dicts of :func:`motiontune.metrics.evaluation.evaluate_motion`).

A metrics file looks like::

    {"videos": [{"video": id, "prompt": text, <metric>: value, ..., "warning": text | None}, ...],
     "mean": {<metric>: value | None, ...},
     "models": {<metric>: description, ...},
     "not_computed": {<metric>: reason, ...}}

:func:`metrics_table` flattens several of them (one per learned motion) into one DataFrame; metrics listed
under ``not_computed`` still get a column, left empty, so a missing metric is visible rather than absent.
:func:`markdown_table` renders a DataFrame as a GitHub-flavoured Markdown table without extra dependencies.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import pandas as pd

IDENTITY_COLUMNS: tuple[str, ...] = ("motion", "kind", "video", "prompt")
VIDEO_ROW = "video"
MEAN_ROW = "mean"


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def metrics_table(reports: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per generated video plus one mean row per motion.

    Args:
        reports: ``{motion name: metrics file dict}`` (see the module docstring).

    Returns:
        DataFrame with columns ``motion, kind, video, prompt`` then every other key of the video entries (first
        seen order), then any ``mean`` / ``not_computed`` metric not seen yet. ``kind`` is ``"video"`` or
        ``"mean"``; the mean row has ``video == "mean"``, an empty prompt and the values of the report's
        ``mean`` dict (other columns empty). Motions appear in sorted order, each's videos as listed, its mean
        row last. Columns whose values are all integers use pandas' nullable ``Int64``.
    """
    columns: list[str] = list(IDENTITY_COLUMNS)

    def add_column(name: str) -> None:
        if name not in columns:
            columns.append(name)

    rows: list[dict[str, Any]] = []
    for motion in sorted(reports):
        report = reports[motion]
        videos = report.get("videos", [])
        for entry in videos:
            for key in entry:
                add_column(key)
            rows.append({"motion": motion, "kind": VIDEO_ROW, **entry})
        mean = report.get("mean", {}) or {}
        for key in mean:
            add_column(key)
        for key in report.get("not_computed", {}) or {}:
            add_column(key)
        rows.append({"motion": motion, "kind": MEAN_ROW, "video": MEAN_ROW, "prompt": "", **mean})

    # dtypes are chosen from the raw values: once in a DataFrame, ints next to a None have become floats.
    data: dict[str, pd.Series] = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        present = [value for value in values if not _is_missing(value)]
        if present and all(_is_integer(value) for value in present):
            data[column] = pd.Series(pd.array([None if _is_missing(v) else int(v) for v in values], dtype="Int64"))
        elif present and all(isinstance(value, numbers.Real) and not isinstance(value, bool) for value in present):
            data[column] = pd.Series([math.nan if _is_missing(v) else float(v) for v in values], dtype="float64")
        else:
            data[column] = pd.Series(values, dtype="object")
    return pd.DataFrame(data, columns=columns)


def _format_cell(value: Any, float_digits: int, missing: str) -> str:
    """Text of one cell; pipes escaped and newlines flattened so the Markdown row stays intact."""
    if _is_missing(value):
        return missing
    if isinstance(value, bool):
        text = str(value)
    elif _is_integer(value):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        text = f"{float(value):.{float_digits}f}"
    else:
        text = str(value)
    return text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def markdown_table(df: pd.DataFrame, float_digits: int = 4, missing: str = "n/a") -> str:
    """GitHub-flavoured Markdown table of ``df`` (its columns as header; the index is not shown).

    Numeric columns are right-aligned; floats get ``float_digits`` decimals; missing values print as
    ``missing``. Returns the table with a trailing newline.
    """
    headers = [_format_cell(str(column), float_digits, missing) for column in df.columns]
    alignments = [
        "---:" if pd.api.types.is_numeric_dtype(df[column]) and not pd.api.types.is_bool_dtype(df[column]) else "---"
        for column in df.columns
    ]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(alignments) + " |"]
    for row in df.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_format_cell(value, float_digits, missing) for value in row) + " |")
    return "\n".join(lines) + "\n"
