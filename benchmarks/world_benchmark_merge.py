"""Issue 18: one world benchmark report from several runs of it (other methods, step counts or seeds).

Each input is a world benchmark results table (``results.csv`` of ``kedro run --pipelines=world_benchmark``, or
``world_transfer_check.csv`` of ``world_sanity_check.py --targets others --benchmark-cases``) made on the same
backbone, cases and targets: runs of other methods or step counts on the same seeds (``--videos common``, the
default: the videos every run has), or runs of other seeds (``--videos all``: pooled). A row in several inputs
(the controls, run in each) is the same video, so its scores must agree, which is checked: a disagreement means
the runs are not of one benchmark and is an error. ``--families`` keeps only some reference families' videos.
Runs at other reference seeds (``world_sanity_check.py --reference-seed``: other references of the same cases) pool
with ``--videos all``: a video is named by its reference seed too, so their same-named cases stay apart, and the
report adds a table per family and reference draw. A table without the ``reference_seed`` column (written before
it existed) was drawn at ``--untagged-reference-seed``, by default the configured ``world_benchmark.reference_seed``.
The report has what the benchmark's own has: the summary of every row, each method's lead over the control from
the same noise (paired over videos, 95% bootstrap interval) in trajectory similarity and direction agreement,
and the per-family tables.

    python benchmarks/world_benchmark_merge.py \\
        --results benchmarks/results/world_transfer_check_animatediff_backbone_me_800_steps.csv \\
        --results benchmarks/results/world_transfer_check_animatediff_backbone_md_150_steps.csv \\
        --out benchmarks/results/world_transfer_check_animatediff_backbone_paper_steps.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from world_backbone_transfer import matched_controls  # noqa: E402

from motiontune.world_models.benchmark import (  # noqa: E402
    METRICS,
    VIDEO_KEYS,
    control_leads,
    control_leads_markdown,
    family_markdown,
    world_summary,
    world_summary_markdown,
)

VIDEO = list(VIDEO_KEYS)
VIDEO_SELECTIONS = ("common", "all")
ROW = ["method", *VIDEO]
# Scores of one video computed twice agree to float rounding; anything larger is another video.
SAME_SCORE_ATOL = 1e-6


class MergeError(ValueError):
    """The inputs are not runs of one benchmark."""


def merge_results(tables: dict[str, pd.DataFrame], videos: str = "common", families: Sequence[str] | None = None,
                  untagged_reference_seed: int | None = None) -> pd.DataFrame:
    """The rows of every table, each (method, video) once, in first-seen order.

    ``tables``: name -> results (one row per method or control and video). ``videos``: ``common`` keeps the videos
    every table has (runs of other methods on one benchmark), ``all`` every video of any table (runs of other seeds,
    pooled). ``families``: only those reference families' videos (None: all). ``untagged_reference_seed``: the
    reference seed of a table without a ``reference_seed`` column (None: such a table is an error). A row present in
    several tables (the controls) must have the same scores in each, else :class:`MergeError` names the first
    disagreement."""
    if videos not in VIDEO_SELECTIONS:
        raise MergeError(f"videos: {videos!r} is not one of {', '.join(VIDEO_SELECTIONS)}")
    untagged = [name for name, table in tables.items() if "reference_seed" not in table]
    if untagged and untagged_reference_seed is None:
        raise MergeError(f"{', '.join(untagged)}: no reference_seed column, and no reference seed given for it")
    tables = {name: table if "reference_seed" in table else table.assign(reference_seed=untagged_reference_seed)
              for name, table in tables.items()}
    if families is not None:
        tables = {name: table[table["family"].isin(families)] for name, table in tables.items()}
    kept_videos = None
    for table in tables.values():
        own = table[VIDEO].drop_duplicates()
        if kept_videos is None:
            kept_videos = own
        elif videos == "common":
            kept_videos = kept_videos.merge(own, on=VIDEO)
        else:
            kept_videos = pd.concat([kept_videos, own]).drop_duplicates()
    if kept_videos is None or kept_videos.empty:
        raise MergeError("the results share no (case, seed, prompt) video" + (f" of the families {', '.join(families)}" if families else ""))
    common = kept_videos
    metrics = [metric for metric, _ in METRICS]
    merged: list[pd.DataFrame] = []
    seen: dict[tuple, tuple[str, pd.Series]] = {}
    for name, table in tables.items():
        kept = table.merge(common, on=VIDEO)
        fresh = []
        for index, row in kept.iterrows():
            key = tuple(row[column] for column in ROW)
            if key not in seen:
                seen[key] = (name, row)
                fresh.append(index)
                continue
            first_name, first = seen[key]
            for metric in metrics:
                if metric not in row or metric not in first:
                    continue
                a, b = pd.to_numeric(first[metric], errors="coerce"), pd.to_numeric(row[metric], errors="coerce")
                same = (pd.isna(a) and pd.isna(b)) or (not pd.isna(a) and not pd.isna(b) and abs(a - b) <= SAME_SCORE_ATOL)
                if not same:
                    raise MergeError(f"{first_name} and {name} disagree on {key[0]}, reference seed {key[1]}, case "
                                     f"{key[2]}, seed {key[3]}, {key[4]!r}: {metric} {a} vs {b}; not runs of one benchmark")
        merged.append(kept.loc[fresh])
    return pd.concat(merged, ignore_index=True)


def report(merged: pd.DataFrame, sources: list[str]) -> str:
    """The markdown report of the merged rows."""
    controls = matched_controls()
    videos = merged[VIDEO].drop_duplicates()
    reference_seeds = sorted(videos["reference_seed"].unique().tolist())
    lines = [f"World benchmark, merged from {len(sources)} runs on {len(videos)} (reference seed, case, seed, target "
             f"prompt) videos (reference seeds {reference_seeds}; seeds {sorted(videos['seed'].unique().tolist())}; "
             f"families {', '.join(pd.unique(merged['family']))}; "
             "rows in several runs checked equal): "
             + ", ".join(f"`{source}`" for source in sources) + ". Mean [95% bootstrap interval] over videos; "
             "lead = the row minus the backbone alone from the same noise, paired over videos.\n",
             world_summary_markdown(world_summary(merged))]
    for metric in ("trajectory_similarity", "direction_correct"):
        lines.append(control_leads_markdown(control_leads(merged, controls, metric), metric))
    for metric in ("trajectory_similarity", "scale_similarity"):
        if metric in merged and np.isfinite(pd.to_numeric(merged[metric], errors="coerce")).any():
            lines.append(family_markdown(merged, metric))
    if len(reference_seeds) > 1:
        # How much the reference drawn moves a family's score (each draw: its own colour, shape, size and start).
        # Columns by family, then by draw (the integer seed, so r7 before r10), rows in run order (a stable sort).
        by_draw = merged.sort_values(["family", "reference_seed"], kind="stable")
        by_draw = by_draw.assign(family=by_draw["family"] + " r" + by_draw["reference_seed"].astype(str))
        lines.append(family_markdown(by_draw, "trajectory_similarity"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", action="append", required=True, type=Path, metavar="CSV",
                        help="a world benchmark results table (give two or more)")
    parser.add_argument("--videos", choices=VIDEO_SELECTIONS, default="common",
                        help="common: the videos every run has (other methods of one benchmark); all: every video "
                             "(other seeds of one benchmark, pooled)")
    parser.add_argument("--families", type=lambda text: [item for item in text.split(",") if item],
                        help="only these reference families, e.g. circle_counterclockwise,zigzag")
    parser.add_argument("--untagged-reference-seed", type=int, default=None,
                        help="the reference seed of a table without a reference_seed column (default: "
                             "world_benchmark.reference_seed in conf/base, the only one before the column existed)")
    parser.add_argument("--out", type=Path, required=True, help="the markdown report; the merged rows go next to it as .csv")
    args = parser.parse_args(argv)
    if len(args.results) < 2:
        parser.error("--results: give two or more tables to merge")
    missing = [str(path) for path in args.results if not path.is_file()]
    if missing:
        parser.error(f"--results: no such file: {', '.join(missing)}")
    tables = {str(path): pd.read_csv(path) for path in args.results}
    untagged_reference_seed = args.untagged_reference_seed
    if untagged_reference_seed is None:
        configured = yaml.safe_load((ROOT / "conf" / "base" / "parameters_world_benchmark.yml").read_text(encoding="utf-8"))
        untagged_reference_seed = int(configured["world_benchmark"]["reference_seed"])
    try:
        merged = merge_results(tables, args.videos, args.families, untagged_reference_seed)
    except MergeError as error:
        parser.error(str(error))
    text = report(merged, list(tables))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    merged.to_csv(args.out.with_suffix(".csv"), index=False)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
