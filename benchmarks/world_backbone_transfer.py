"""Issue 18: the world benchmark's transfer scores of two backbones, side by side on the same videos.

Reads world benchmark results (``results.csv`` of ``kedro run --pipelines=world_benchmark``, or
``world_transfer_check.csv`` of ``world_sanity_check.py --targets others --benchmark-cases``), keeps the
(case, seed, prompt) videos every input has, and writes for each backbone the lead of every method over the
control that starts from the same noise (paired; ``same_init_controls`` as the benchmark node), in trajectory
similarity and direction agreement, and the trajectory similarity per reference family. The controls are matched from ``conf/base`` (the methods' inference defaults),
as in the benchmark itself.

    python benchmarks/world_backbone_transfer.py \\
        --results "world-t2v=benchmarks/results/world_benchmark_world_t2v.csv" \\
        --results "world-t2v-animatediff (default)=data/08_reporting/world_benchmark/results.csv" \\
        --out benchmarks/results/world_backbone_transfer.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from motiontune.pipelines.world_benchmark.nodes import same_noise_controls  # noqa: E402
from motiontune.world_models.benchmark import (  # noqa: E402
    control_leads,
    control_leads_markdown,
    family_markdown,
    video_keys,
)

METRICS = ("trajectory_similarity", "direction_correct")


def _conf(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text(encoding="utf-8"))[name]


def matched_controls() -> dict[str, str | None]:
    """Each method row's same-noise control, from the world benchmark's configuration."""
    return same_noise_controls(_conf("world_benchmark"), _conf("train"), _conf("generate"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", action="append", required=True, metavar="LABEL=CSV",
                        help="a backbone's label and its world benchmark results (give two or more)")
    parser.add_argument("--out", type=Path, required=True, help="the markdown report to write")
    args = parser.parse_args(argv)
    tables: dict[str, pd.DataFrame] = {}
    for item in args.results:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"--results {item!r}: expected LABEL=CSV with an existing file")
        tables[label] = pd.read_csv(path)
    # The video columns every table has (a table written before the reference_seed column lacks it).
    keys = [key for key in video_keys(next(iter(tables.values()))) if all(key in table for table in tables.values())]
    common = None
    for table in tables.values():
        videos = table[keys].drop_duplicates()
        common = videos if common is None else common.merge(videos, on=keys)
    if common is None or common.empty:
        parser.error("the results share no (case, seed, prompt) video")
    controls = matched_controls()
    lines = [f"World benchmark transfer, backbones side by side on the same {len(common)} (case, seed, target prompt) "
             f"videos (seeds {sorted(common['seed'].unique().tolist())}). Lead = the method's trajectory similarity "
             "minus that of the backbone alone from the same noise, paired over videos, with a 95% bootstrap "
             "interval.\n"]
    for label, table in tables.items():
        kept = table.merge(common, on=keys)
        lines += [f"## {label}\n"]
        for metric in METRICS:
            lines.append(control_leads_markdown(control_leads(kept, controls, metric), metric))
        lines.append(family_markdown(kept))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
