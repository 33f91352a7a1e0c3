"""Files DVC reads after a stage: loss curves to plot (train) and one metrics summary (evaluate).

DVC cannot glob ``data/08_reporting/*/metrics.json`` (one folder per motion, names from the manifest) and
plots lists of records, not the ``loss_history`` arrays of ``training_summary.json``; the ``train`` and
``evaluate`` stages of ``dvc.yaml`` run this after their Kedro pipeline::

    python -m motiontune.tracking.dvc_reports loss-curves      # data/08_reporting/loss_history/<motion>.csv
    python -m motiontune.tracking.dvc_reports metrics-summary  # data/08_reporting/metrics_summary.json

Both are small, deterministic in their inputs, and meant to be committed to git (``dvc metrics diff``,
``dvc plots diff`` and ``dvc exp show`` compare them across commits and experiments).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORTING = Path("data/08_reporting")
TRAINING_SUMMARY = REPORTING / "training_summary.json"
LOSS_CURVES = REPORTING / "loss_history"
METRICS_SUMMARY = REPORTING / "metrics_summary.json"
CLIP_METADATA = Path("data/02_intermediate/clip_metadata.csv")


def write_loss_curves(training_summary: Path = TRAINING_SUMMARY, out_dir: Path = LOSS_CURVES) -> list[Path]:
    """One ``<motion>.csv`` (``step,loss``) per motion of ``training_summary.json``; stale files are removed."""
    summary = json.loads(Path(training_summary).read_text(encoding="utf-8"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in sorted(summary.items()):
        path = out_dir / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", "loss"])
            writer.writerows([step, f"{float(loss):.6g}"] for step, loss in enumerate(entry["loss_history"]))
        written.append(path)
    for stale in set(out_dir.glob("*.csv")) - set(written):
        stale.unlink()
    return written


def _motion_names(clip_metadata: Path) -> list[str]:
    with open(clip_metadata, newline="", encoding="utf-8") as handle:
        return [row["name"] for row in csv.DictReader(handle)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def write_metrics_summary(reporting_dir: Path = REPORTING, clip_metadata: Path = CLIP_METADATA, out: Path = METRICS_SUMMARY) -> dict[str, Any]:
    """``{"motions": {name: mean metrics}, "mean": {metric: mean over motions}}`` from each motion's
    ``<reporting_dir>/<name>/metrics.json`` (the motions of ``clip_metadata``); missing files fail, naming them."""
    names = _motion_names(Path(clip_metadata))
    missing = [str(Path(reporting_dir) / name / "metrics.json") for name in names if not (Path(reporting_dir) / name / "metrics.json").is_file()]
    if missing:
        raise FileNotFoundError(f"metrics summary: no metrics file {missing}; run the evaluate pipeline")
    motions: dict[str, dict[str, float | None]] = {}
    for name in names:
        report = json.loads((Path(reporting_dir) / name / "metrics.json").read_text(encoding="utf-8"))
        motions[name] = {key: _number(value) for key, value in sorted(report.get("mean", {}).items())}
    keys = sorted({key for values in motions.values() for key in values})
    mean = {}
    for key in keys:
        values = [values[key] for values in motions.values() if values.get(key) is not None]
        mean[key] = sum(values) / len(values) if values else None
    summary = {"motions": motions, "mean": mean}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motiontune.tracking.dvc_reports", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    curves = commands.add_parser("loss-curves", help="data/08_reporting/loss_history/<motion>.csv from training_summary.json")
    curves.add_argument("--summary", type=Path, default=TRAINING_SUMMARY)
    curves.add_argument("--out", type=Path, default=LOSS_CURVES)
    metrics = commands.add_parser("metrics-summary", help="data/08_reporting/metrics_summary.json from each motion's metrics.json")
    metrics.add_argument("--reporting", type=Path, default=REPORTING)
    metrics.add_argument("--metadata", type=Path, default=CLIP_METADATA)
    metrics.add_argument("--out", type=Path, default=METRICS_SUMMARY)
    args = parser.parse_args(argv)
    if args.command == "loss-curves":
        paths = write_loss_curves(args.summary, args.out)
        print(f"wrote {len(paths)} loss curves to {args.out}")
    else:
        summary = write_metrics_summary(args.reporting, args.metadata, args.out)
        print(f"wrote {args.out} ({len(summary['motions'])} motions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
