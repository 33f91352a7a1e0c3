"""Overhead of the Ray executor against the local one, side by side in one process (issue 19).

Runs the benchmark pipeline's node (``benchmark_methods``: 4 methods x the sample manifest's references, with
conf/base's CPU-sized settings) once per variant, in this order: local (the Kedro default), Ray with 1 CPU per job
(jobs in parallel), Ray with as many CPUs per job as the local run's torch threads (jobs one after the other, each
with the local run's threads: its results must equal the local run's bitwise), and local again. The first run
may also pay this process's one-time costs (imports, first loads), so the ratios are to the second local run. Each Ray variant starts and stops
its own local Ray instance, so its start-up is in its time. Writes ``<out>/executor_overhead.md`` and ``.json``.

    python benchmarks/executor_overhead.py                 # about 7 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def section(name: str, key: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text(encoding="utf-8"))[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    os.chdir(ROOT)  # the parameters' relative paths (data/...)
    import torch

    from motiontune.pipelines.benchmark.nodes import benchmark_methods

    manifest = yaml.safe_load((ROOT / "data" / "01_raw" / "manifest.yml").read_text(encoding="utf-8"))
    params = {name: section(name, key) for name, key in (("backbone", "backbone"), ("ingest", "ingest"), ("encode", "encode"),
                                                         ("train", "train"), ("generate", "generate"), ("evaluate", "evaluate"),
                                                         ("benchmark", "benchmark"), ("executor", "ray"))}
    video = yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text(encoding="utf-8"))["video"]
    threads = torch.get_num_threads()
    variants = [("local (first, cold)", {}, {}), ("ray, 1 CPU per job", {"executor": "ray"}, {"num_cpus": 1}),
                (f"ray, {threads} CPUs per job", {"executor": "ray"}, {"num_cpus": threads}), ("local", {}, {})]
    rows, tables = [], {}
    for label, benchmark, ray in variants:
        started = time.perf_counter()
        results, *_ = benchmark_methods(manifest, params["backbone"], video, params["ingest"], params["encode"], params["train"],
                                        params["generate"], params["evaluate"], {**params["benchmark"], **benchmark},
                                        {**params["executor"], **ray})
        seconds = time.perf_counter() - started
        tables[label] = results
        rows.append({"variant": label, "seconds": round(seconds, 1), "jobs": int(results[["method", "motion", "seed"]].drop_duplicates().shape[0])})
    base = rows[-1]["seconds"]
    for row in rows:
        row["ratio_to_local"] = round(row["seconds"] / base, 3)
        row["table_equals_local"] = bool(tables[row["variant"]].equals(tables["local"]))
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch_threads": threads}
    (args.out / "executor_overhead.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Executor overhead (benchmarks/executor_overhead.py; {meta['cpus']} CPUs, torch threads {threads})", "",
             "| variant | seconds | jobs | ratio to local | results table equals local |", "|---|---:|---:|---:|---|"]
    lines += [f"| {r['variant']} | {r['seconds']} | {r['jobs']} | {r['ratio_to_local']} | {r['table_equals_local']} |" for r in rows]
    (args.out / "executor_overhead.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
