"""Save a PNG contact sheet of motion-world samples: a few clips per family, one row per clip.

    python scripts/preview_world.py data/08_reporting/world_preview.png --per-family 2 --analyse --truth

Each row is labelled with its family, caption and background; with ``--analyse`` a second line
shows what the ground-truth-free analyser read from the frames; ``--truth`` marks the
ground-truth centre of the object with a small cross.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import yaml

from motiontune.world.analyser import AnalyserConfig, analyse_video
from motiontune.world.generator import WorldSample, WorldSpec, render_sample

DEFAULT_PARAMS = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_world.yml"
LINE_HEIGHT = 13  # px per label line above each row (text is not scaled with the frames)
GAP = 2  # px between frames and rows
FONT_SCALE = 0.38
CROSS_HALF = 3  # px arm of the ground-truth cross, at output scale
# Seeds of the clips: family i, repeat r uses seed * SEED_STRIDE + i * per_family + r, so every
# row shows a different object while rerunning with the same --seed gives the same sheet.
SEED_STRIDE = 10_000


def _row(sample: WorldSample, scale: int, lines: list[str], show_truth: bool) -> np.ndarray:
    """One labelled row: the clip's frames side by side, upscaled by ``scale`` (nearest)."""
    num_frames, height, width, _ = sample.frames.shape
    cell_w, cell_h = width * scale, height * scale
    label_h = LINE_HEIGHT * len(lines)
    row = np.full((label_h + cell_h, num_frames * (cell_w + GAP) - GAP, 3), 255, dtype=np.uint8)
    for index, line in enumerate(lines):
        baseline = LINE_HEIGHT * (index + 1) - 3
        cv2.putText(row, line, (2, baseline), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    for index, frame in enumerate(sample.frames):
        big = cv2.resize(frame, (cell_w, cell_h), interpolation=cv2.INTER_NEAREST)
        if show_truth:
            # Pixel centres sit at integer coordinates, i.e. at (x + 0.5) * scale in the big frame.
            x, y = ((sample.centres[index] + 0.5) * scale).astype(int)
            cv2.line(big, (x - CROSS_HALF, y), (x + CROSS_HALF, y), (0, 0, 0), 1)
            cv2.line(big, (x, y - CROSS_HALF), (x, y + CROSS_HALF), (0, 0, 0), 1)
        left = index * (cell_w + GAP)
        row[label_h:, left : left + cell_w] = big
    return row


def build_sheet(
    spec: WorldSpec,
    per_family: int,
    seed: int,
    scale: int,
    analyser: AnalyserConfig | None,
    show_truth: bool,
) -> np.ndarray:
    """The contact sheet, (H, W, 3) uint8 RGB; ``analyser`` None leaves the analysis line out."""
    rows = []
    for family_index, family in enumerate(spec.families):
        for repeat in range(per_family):
            sample_seed = seed * SEED_STRIDE + family_index * per_family + repeat
            sample = render_sample(spec, family, seed=sample_seed)
            held_out = " (held out)" if family in spec.held_out_families else ""
            lines = [f"{family}{held_out}: {sample.caption} [{sample.background}]"]
            if analyser is not None:
                result = analyse_video(sample.frames, spec, analyser)
                lines.append(
                    f"  read: {result.colour} {result.shape}, dir {result.direction}, path {result.path_kind}"
                    f", rot {result.rotation}, area {result.area_trend}, camera {result.camera}"
                )
            rows.append(_row(sample, scale, lines, show_truth))
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, GAP), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    return np.concatenate(padded, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="YAML with a 'world' section")
    parser.add_argument("--per-family", type=int, default=2, help="clips per motion family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=3, help="nearest-neighbour upscaling of each frame")
    parser.add_argument(
        "--analyse", action="store_true", help="add the analyser's reading under each caption"
    )
    parser.add_argument("--truth", action="store_true", help="mark the ground-truth centre")
    args = parser.parse_args()

    params = yaml.safe_load(args.params.read_text(encoding="utf-8"))["world"]
    spec = WorldSpec.from_params(params)
    analyser = AnalyserConfig.from_params(params.get("analyser")) if args.analyse else None
    sheet = build_sheet(spec, args.per_family, args.seed, args.scale, analyser, args.truth)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"{args.out}: could not write the PNG")
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
