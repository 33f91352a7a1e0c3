"""Issue 18, item 1: can each method reproduce its own world reference?

Each method is trained on a world reference (``world_benchmark`` with ``targets: reference``) and regenerates
the reference's own caption; the world analyser scores the video's object track against the reference's
ground truth (trajectory similarity, direction agreement). Every method runs twice: from its own default noise
init (mostly the reference's DDIM inversion) and from random noise (what its trained parameters carry on their
own); the controls are the backbone alone from the same two kinds of noise. A method that cannot reproduce its
own reference cannot transfer it.

Everything else comes from ``conf/base`` (the world, the backbone, the methods' options, the world benchmark's
training and sampling overrides); the options below only pick the cases, seeds and steps. Writes
``<out>/world_sanity_check.md`` (mean and 95% bootstrap interval per method and metric) and ``.csv`` (one row per
video); ``world_transfer_check.{md,csv}`` with ``--targets others``; with ``--contact-sheets``, also
``<out>/contact_sheets/<case>.png`` (the reference, then every method's and control's video of that case), so the
numbers can be checked by eye. CPU: about a minute per method run on 2 cores.

    python benchmarks/world_sanity_check.py                          # translate in 4 directions, seed 0
    python benchmarks/world_sanity_check.py --directions right --methods vmc --out /tmp/sanity
    python benchmarks/world_sanity_check.py --methods vmc --method-options '{"vmc_form": "l2"}' --out /tmp/vmc-l2
    python benchmarks/world_sanity_check.py --backbone /tmp/scratch/world-t2v-scratch --out /tmp/sanity-scratch
    python benchmarks/world_sanity_check.py --targets others --out /tmp/transfer   # the benchmark's transfer targets
    python benchmarks/world_sanity_check.py --targets others --benchmark-cases --families circle_counterclockwise,zigzag \
        --train-steps 800 --out /tmp/held-out                         # held-out families at paper step counts
    python benchmarks/world_sanity_check.py --targets others --benchmark-cases --families zigzag --reference-seed 8 \
        --out /tmp/held-out-8                                         # another draw of the same cases' references
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from motiontune.io.clip import VideoClip  # noqa: E402
from motiontune.metrics.intervals import bootstrap_interval  # noqa: E402
from motiontune.metrics.previews import contact_sheet, save_png  # noqa: E402

METRICS = ("trajectory_similarity", "jump_free_trajectory_similarity", "jump_share", "direction_correct", "found",
           "colour_correct", "shape_correct")


def _conf(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text(encoding="utf-8"))


def summary_markdown(results: pd.DataFrame) -> str:
    lines = ["| method | videos | " + " | ".join(METRICS) + " |", "|---|---:|" + "---|" * len(METRICS)]
    for label, rows in results.groupby("method", sort=False):
        cells = []
        for metric in METRICS:
            values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float)
            low, high = bootstrap_interval(values)
            mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            cells.append(f"{mean:.2f} [{low:.2f}, {high:.2f}]")
        lines.append(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_contact_sheets(videos: Mapping[str, VideoClip], out_dir: Path, frames_per_video: int,
                         cell_height: int | None) -> list[Path]:
    """One PNG per case of the benchmark's ``videos`` (keys ``reference/<case>`` and
    ``<method>/<seed>/<case>/<NN>_<prompt>``, as ``run_world_benchmark`` names them): the reference's row first,
    then each generated video's in the benchmark's order, labelled ``<method> s<seed> <NN>_<prompt>``."""
    references: dict[str, np.ndarray] = {}
    generated: dict[str, list[tuple[str, np.ndarray]]] = {}
    for key, clip in videos.items():
        parts = key.split("/")
        if parts[0] == "reference":
            references["/".join(parts[1:])] = clip.frames
        else:
            method, seed, case, video = parts[0], parts[1], "/".join(parts[2:-1]), parts[-1]
            generated.setdefault(case, []).append((f"{method} s{seed} {video}", clip.frames))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for case, frames in references.items():
        sheet = contact_sheet([("reference", frames), *generated.get(case, [])], frames_per_video=frames_per_video,
                              cell_height=cell_height)
        paths.append(save_png(out_dir / f"{case}.png", sheet))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directions", default="right,up,left,down_left", help="translate directions, one case each")
    parser.add_argument("--benchmark-cases", action="store_true",
                        help="the world benchmark's own cases (parameters_world_benchmark.yml) instead of --directions")
    parser.add_argument("--families", default=None,
                        help="with --benchmark-cases: only the cases of these families, e.g. "
                             "circle_counterclockwise,zigzag (the two held out of backbone training)")
    parser.add_argument("--methods", default="motion_embeddings,vmc,motionmatcher,motiondirector")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--targets", choices=("reference", "others", "others_with_motion"), default="reference",
                        help="reference: regenerate the reference's own caption (the sanity check); others: the "
                             "world benchmark's transfer targets (another colour and shape), on the same cases; "
                             "others_with_motion: the same targets with the reference caption's motion words kept")
    parser.add_argument("--reference-seed", type=int, default=None,
                        help="default: world_benchmark.reference_seed; another seed draws other references of the "
                             "same cases (colour, shape, size, background, start) and other targets")
    parser.add_argument("--train-steps", type=int, default=None, help="default: the world benchmark's train.steps")
    parser.add_argument("--train-caption-variants", type=int, default=0,
                        help="also train on N captions naming another colour and shape with the same motion words, "
                             "one drawn per step (world_benchmark.train_caption_variants; an appearance-augmentation "
                             "diagnostic, not in the papers)")
    parser.add_argument("--method-options", type=json.loads, default={},
                        help='JSON merged over the options of every selected method, e.g. \'{"vmc_form": "l2"}\'')
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--backbone", type=Path, default=None,
                        help="a diffusers backbone folder instead of backbone.pretrained_model (e.g. one that "
                             "world_backbone_asymmetry.py trained)")
    parser.add_argument("--contact-sheets", action="store_true",
                        help="also write <out>/contact_sheets/<case>.png: every video of each case, to look at")
    parser.add_argument("--sheet-frames", type=int, default=8, help="frames per video on a contact sheet")
    parser.add_argument("--sheet-cell-height", type=int, default=64,
                        help="pixel height of a frame on a contact sheet (world clips are 32 px)")
    args = parser.parse_args(argv)
    if args.sheet_frames < 1 or args.sheet_cell_height < 1:
        parser.error("--sheet-frames and --sheet-cell-height: whole numbers >= 1")
    args.out = args.out.resolve()
    if args.families is not None and not args.benchmark_cases:
        parser.error("--families selects among the benchmark's cases: use it with --benchmark-cases")
    if not isinstance(args.method_options, dict):
        parser.error(f"--method-options: a JSON object of option names and values, got {args.method_options!r}")
    if args.backbone is not None and not (args.backbone / "model_index.json").is_file():
        parser.error(f"--backbone {args.backbone}: not a diffusers folder (no model_index.json)")

    from motiontune.pipelines.world_benchmark.nodes import benchmark_on_world

    world_benchmark = dict(_conf("world_benchmark")["world_benchmark"])
    world_benchmark["targets"] = args.targets
    if args.reference_seed is not None:
        world_benchmark["reference_seed"] = args.reference_seed
    if not args.benchmark_cases:
        world_benchmark["cases"] = [{"family": "translate", "params": {"direction": d, "speed": "fast"}}
                                    for d in args.directions.split(",")]
    elif args.families is not None:
        # Each kept case is drawn as in the whole benchmark (same reference clip and targets): its numbers are
        # those of the same videos of a whole run. An unknown family is the benchmark's one-line error.
        world_benchmark["families"] = args.families.split(",")
    world_benchmark["seeds"] = [int(seed) for seed in args.seeds.split(",")]
    world_benchmark["work_dir"] = str(args.out / "world_sanity_check_runs")
    world_benchmark["progress_bar"] = True
    world_benchmark["train_caption_variants"] = args.train_caption_variants
    if args.train_steps is not None:
        world_benchmark["train"] = {**world_benchmark.get("train", {}), "steps": args.train_steps}
    wanted = args.methods.split(",")
    # Each method from its own noise init, and (world_benchmark.method_variants) from random noise; the controls
    # are the backbone alone from each of those inits.
    world_benchmark["methods"] = [{**entry, "options": {**entry["options"], **args.method_options}}
                                  for entry in world_benchmark["methods"] if entry["method"] in wanted]
    params = {name: _conf(name)[name] for name in ("backbone", "world", "train", "generate", "evaluate")}
    if args.backbone is not None:
        params["backbone"] = {**params["backbone"], "pretrained_model": str(args.backbone.resolve())}
    os.chdir(ROOT)  # the paths in conf/ are relative to the project root, as for `kedro run`
    ray = _conf("executor")["ray"]
    fps = float(yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text(encoding="utf-8"))["video"]["fps"])
    results, _, benchmark_markdown, _, videos = benchmark_on_world(params["backbone"], params["world"], params["train"], params["generate"],
                                     params["evaluate"], world_benchmark, fps, ray)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = {"reference": "world_sanity_check", "others": "world_transfer_check",
            "others_with_motion": "world_transfer_check_with_motion_words"}[args.targets]
    results.to_csv(args.out / f"{stem}.csv", index=False)
    header = (f"World sanity check (issue 18 item 1): backbone {params['backbone']['pretrained_model']}, "
              + (f"the world benchmark's cases{f' of families {args.families}' if args.families else ''}"
                 if args.benchmark_cases else f"translate {args.directions}")
              + f", reference seed {world_benchmark['reference_seed']}, seeds {args.seeds}, train steps "
              f"{world_benchmark.get('train', {}).get('steps')}"
              + (f", method options {json.dumps(args.method_options)}" if args.method_options else "")
              + (f", trained on the caption and {args.train_caption_variants} variants of another appearance (one per step)"
                 if args.train_caption_variants else "") + "; "
              + ("target = the reference's own caption. " if args.targets == "reference" else
                 f"targets = {world_benchmark['targets_per_case']} prompts of another colour and shape per case "
                 + ("in the reference caption's grammar, its motion words kept (transfer diagnostic). "
                    if args.targets == "others_with_motion" else "(transfer). "))
              +
              "Mean [95% bootstrap interval] over videos.\n\n")
    # Then the world benchmark's own tables: every metric, the leads over the same-noise controls, per family.
    (args.out / f"{stem}.md").write_text(header + summary_markdown(results) + "\n" + benchmark_markdown, encoding="utf-8")
    if args.contact_sheets:
        write_contact_sheets(videos, args.out / "contact_sheets", args.sheet_frames, args.sheet_cell_height)
    print(header + summary_markdown(results))
    return 0


if __name__ == "__main__":
    from motiontune.errors import exit_status_of

    raise SystemExit(exit_status_of(main))  # a parameter that does not fit: its message alone, status 2
