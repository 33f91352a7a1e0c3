"""Issue 18, item 2: does a time-asymmetric training split make the world backbone time-asymmetric?

The committed world backbone's train split is (nearly) closed under time reversal: every translate and pan
direction comes with its opposite, grow with shrink, zoom in with zoom out. Under the empty and appearance-only
captions (35% of its training captions) the best denoiser of such data is itself reversal-equivariant, and the
measured reversal error is 0.03 (0 = exactly symmetric). This experiment continues the committed backbone's
training (its refine objective, from its saved weights, the VAE untouched) on the same train clips with one
member of each reversal pair left out, so that the data no longer rewards symmetry, and measures both backbones
side by side: competence (colour, shape, direction of its own videos), reversal error and the loss ratios
(`world_backbone.competence` in conf/base).

Kept directions: ``--keep-directions`` (translate and pan); kept scale/camera families: grow and zoom_in (shrink
and zoom_out dropped); circle_clockwise stays (its reverse is held out already). Writes
``<out>/world_backbone_asymmetry.json`` and ``.md`` and the continued backbone to ``<out>/world-t2v-asymmetric``
(a diffusers folder: pass it to ``world_sanity_check.py --backbone``). CPU: about 2 s per step on 2 cores.

    python benchmarks/world_backbone_asymmetry.py --steps 500 --out /tmp/asymmetry
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DROPPED_FAMILIES = ("shrink", "zoom_out")  # the reverses of grow and zoom_in


def _conf(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text(encoding="utf-8"))


def keep_sample(family: str, params: dict[str, Any], keep_directions: set[str]) -> bool:
    """Whether a train clip stays in the asymmetric split."""
    if family in DROPPED_FAMILIES:
        return False
    if family in ("translate", "pan"):
        return str(params.get("direction")) in keep_directions
    return True


def _competence(world: dict[str, Any], world_backbone: dict[str, Any], backbone_dir: Path) -> dict[str, Any]:
    from motiontune.pipelines.world_backbone.nodes import measure_competence

    fps = float(yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text(encoding="utf-8"))["video"]["fps"])
    _, summary, _ = measure_competence(world, {**world_backbone, "output_dir": str(backbone_dir)}, fps)
    return summary


def _headline(summary: dict[str, Any]) -> dict[str, float]:
    symmetry = summary["time_symmetry"]
    ratios = symmetry["loss_ratios"]
    return {
        "colour": summary["colour_correct"]["accuracy"],
        "shape": summary["shape_correct"]["accuracy"],
        "direction": summary["direction_correct"]["accuracy"],
        "reversal_error_mean": float(np.mean(list(symmetry["reversal_error"].values()))),
        "opposite_word_ratio_mean": float(np.mean([r["opposite_direction_word"] for r in ratios.values()])),
        "reversed_frames_ratio_mean": float(np.mean([r["reversed_frames"] for r in ratios.values()])),
        "shuffled_frames_ratio_mean": float(np.mean([r["shuffled_frames"] for r in ratios.values()])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--keep-directions", default="right,down_right,down,up_right",
                        help="translate/pan directions kept: one of each opposite pair")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    import torch
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from motiontune.world.captions import appearance_caption
    from motiontune.world.generator import sample_world
    from motiontune.world.spec import WorldSpec
    from motiontune.world.vocabulary import opposite_direction
    from motiontune.world_models.backbone_training import WorldBackboneConfig, encode_clips, train_diffusion

    world = _conf("world")["world"]
    world_backbone = _conf("world_backbone")["world_backbone"]
    committed = ROOT / world_backbone["output_dir"]
    keep_directions = set(args.keep_directions.split(","))
    for direction in keep_directions:
        if opposite_direction(direction) in keep_directions:
            parser.error(f"--keep-directions keeps both {direction} and its opposite")

    spec = WorldSpec.from_params(world)
    config = WorldBackboneConfig.from_params(world_backbone["training"])
    # The refine stage's objective and settings, its own draws (not the committed refine's batches again).
    stage = replace(config.refine, steps=args.steps, seed=(config.refine.seed or 0) + 100)
    started = time.monotonic()
    samples = sample_world(spec, config.clips, split="train", seed=config.seed)
    kept = [s for s in samples if keep_sample(s.truth.family, dict(s.truth.params), keep_directions)]
    families: dict[str, int] = {}
    for sample in kept:
        families[sample.truth.family] = families.get(sample.truth.family, 0) + 1

    continued = out / "world-t2v-asymmetric"
    shutil.rmtree(continued, ignore_errors=True)
    shutil.copytree(committed, continued)
    vae = AutoencoderKL.from_pretrained(continued / "vae")
    unet = UNet3DConditionModel.from_pretrained(continued / "unet")
    text_encoder = CLIPTextModel.from_pretrained(continued / "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(str(continued / "tokenizer"))
    scheduler_config = json.loads((continued / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    latents = encode_clips(vae, np.stack([s.frames for s in kept])) * float(vae.config.scaling_factor)
    captions = [(s.caption, appearance_caption(s)) for s in kept]
    work_dir = out / "world_backbone_asymmetry_work"
    work_dir.mkdir(exist_ok=True)
    history = train_diffusion(unet, text_encoder, tokenizer, latents, captions, scheduler_config, config, work_dir,
                              f"asymmetric-{args.steps}-{sorted(keep_directions)}", stage, "asymmetric_refine")
    unet.save_pretrained(continued / "unet")
    text_encoder.save_pretrained(continued / "text_encoder")
    training_seconds = time.monotonic() - started

    measured = {}
    for name, folder in (("committed", committed), ("asymmetric", continued)):
        begun = time.monotonic()
        summary = _competence(world, world_backbone, folder)
        measured[name] = {"headline": _headline(summary), "competence": summary,
                          "seconds": round(time.monotonic() - begun, 1)}
    report = {
        "steps": args.steps, "stage": asdict(stage), "keep_directions": sorted(keep_directions),
        "dropped_families": list(DROPPED_FAMILIES), "clips_kept": len(kept), "clips_total": len(samples),
        "families_kept": families, "first_loss": float(np.mean(history[:50])), "final_loss": float(np.mean(history[-50:])),
        "training_seconds": round(training_seconds, 1), "threads": torch.get_num_threads(), "backbones": measured,
    }
    (out / "world_backbone_asymmetry.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    keys = list(measured["committed"]["headline"])
    lines = [f"World backbone, asymmetric continuation (issue 18 item 2): {args.steps} refine steps on {len(kept)} of "
             f"{len(samples)} train clips (translate/pan only {', '.join(sorted(keep_directions))}; no "
             f"{', '.join(DROPPED_FAMILIES)}), {training_seconds:.0f} s. Competence: 48 videos of fast translate "
             "prompts (8 directions cycled); ratios: loss under the condition / loss under the own caption, mean over "
             "t = 900, 700, 500, 300.\n", "| backbone | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, entry in measured.items():
        lines.append(f"| {name} | " + " | ".join(f"{entry['headline'][k]:.3f}" for k in keys) + " |")
    (out / "world_backbone_asymmetry.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
