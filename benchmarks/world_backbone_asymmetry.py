"""Issue 18, item 2: does a time-asymmetric training split make the world backbone time-asymmetric?

The experiments that led to the default backbone. Its recipe (AnimateDiff layout, world-t2v's VAE, the asymmetric
split, diffusion + refine + 4800 continued steps, as ``--from-scratch --layout animatediff`` then
``--continue-from``) is now the ``world_backbone`` pipeline's (conf/base/parameters_world_backbone.yml; at 3, 2 and 2 steps it gives
these two calls' weights bitwise). "The committed backbone" below is the default named there
(``world_backbone.output_dir``); the reports in benchmarks/results/ were written when it was world-t2v.

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

``--from-scratch``: instead of continuing, train a fresh UNet3D and text encoder (the committed VAE and tokenizer
kept, so the latents are the same) on the asymmetric split with the pipeline's full schedule (its diffusion stage,
then its refine stage); ``--temporal-conv-init default`` also gives the last layer of every temporal convolution
PyTorch's default initialisation instead of diffusers' zeros, so the fresh UNet is not time-symmetric at step 0
(its reversal error at init is reported). Output ``<out>/world_backbone_scratch.{json,md}`` and
``<out>/world-t2v-scratch``; checkpoints in ``<out>/world_backbone_scratch_work`` make a killed run resume.
``--continue-from FOLDER`` continues another backbone folder (either family, e.g. a ``--from-scratch`` output)
instead of the committed one, the same way; output ``world_backbone_continued.*`` and ``<FOLDER name>-continued``.
``--layout animatediff`` makes the fresh UNet AnimateDiff's (``tiny_animatediff``: a UNetMotionModel whose motion
modules add a sinusoidal position encoding over frames, so it is not time-symmetric at step 0 either), same VAE,
tokenizer and noise schedule; output ``world_backbone_scratch_animatediff.*`` and ``world-t2v-scratch-animatediff``.

    python benchmarks/world_backbone_asymmetry.py --steps 500 --out /tmp/asymmetry
    python benchmarks/world_backbone_asymmetry.py --from-scratch --temporal-conv-init default
    python benchmarks/world_backbone_asymmetry.py --from-scratch --layout animatediff

On a GPU (issue 18: "where a GPU is available, train there"): ``--device cuda`` trains there (the same CPU-drawn
batches); ``--batch-size`` sets the continued stage's batch; ``--seconds S`` replaces ``--steps`` by as many
hundreds of steps as fit in S seconds, timed on 60 probe steps of a throwaway copy; ``--no-competence`` leaves the
competence to a later CPU run (``--measure-only FOLDER``: the competence of the committed backbone and FOLDER).

    python benchmarks/world_backbone_asymmetry.py --continue-from data/06_models/backbones/world-t2v-animatediff \
        --device cuda --batch-size 128 --seconds 360 --no-competence --out $OUT
"""

from __future__ import annotations

import argparse
import copy
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



def _conf(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text(encoding="utf-8"))


# The default backbone's split (conf/base world_backbone.training.split): the reverses of grow and zoom_in dropped,
# translate and pan in one direction of each opposite pair.
SPLIT = _conf("world_backbone")["world_backbone"]["training"]["split"]
DROPPED_FAMILIES = tuple(SPLIT["left_out_families"])


def _competence(world: dict[str, Any], world_backbone: dict[str, Any], backbone_dir: Path) -> dict[str, Any]:
    from motiontune.pipelines.world_backbone.nodes import measure_competence

    fps = float(yaml.safe_load((ROOT / "conf" / "base" / "parameters.yml").read_text(encoding="utf-8"))["video"]["fps"])
    _, summary, _ = measure_competence(world, {**world_backbone, "output_dir": str(backbone_dir)}, fps)
    return summary


def copy_committed_parts(committed: Path, fresh: Path, out: Path) -> None:
    """``out`` = the fresh backbone folder (either family) with the committed backbone's VAE, tokenizer and
    scheduler, and no stale ``motion_adapter/`` (the library's steps for ``parts_from``)."""
    from motiontune.world_models.backbone_training import adopt_parts, drop_motion_adapter

    shutil.copytree(fresh, out)
    drop_motion_adapter(out)
    adopt_parts(committed, out)


def reinitialise_temporal_conv_outputs(unet: Any, seed: int) -> int:
    """Give the last Conv3d of every temporal convolution block PyTorch's default (Kaiming-uniform) weights instead
    of the zeros diffusers starts them at (ModelScope's identity initialisation). Returns how many were reset."""
    import torch
    from diffusers.models.resnet import TemporalConvLayer

    torch.manual_seed(seed)
    blocks = [module for module in unet.modules() if isinstance(module, TemporalConvLayer)]
    for block in blocks:
        block.conv4[-1].reset_parameters()
    return len(blocks)


def _init_reversal_error(unet: Any, text_encoder: Any, tokenizer: Any, latent_shape: tuple[int, ...],
                         timesteps: list[int], seed: int) -> float:
    """Mean reversal error of a UNet on random latents under the empty caption (time_symmetry's measure)."""
    import torch

    from motiontune.world_models.time_symmetry import reversal_error

    generator = torch.Generator().manual_seed(seed)
    ids = tokenizer([""] * 4, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        text = text_encoder(ids)[0]
    latents = torch.randn((4, *latent_shape), generator=generator)
    return float(np.mean([reversal_error(unet, latents, t, text) for t in timesteps]))


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


def _steps_text(stages: list[tuple[Any, str]]) -> str:
    return " then ".join(f"{stage.steps} {name} steps (batch {stage.batch_size})" for stage, name in stages)


def _measure(world: dict[str, Any], world_backbone: dict[str, Any], folders: dict[str, Path]) -> dict[str, Any]:
    measured = {}
    for name, folder in folders.items():
        begun = time.monotonic()
        summary = _competence(world, world_backbone, folder)
        measured[name] = {"headline": _headline(summary), "competence": summary,
                          "seconds": round(time.monotonic() - begun, 1)}
    return measured


def _headline_table(measured: dict[str, Any]) -> list[str]:
    """The backbones' headline competence as markdown table lines, one row per backbone."""
    keys = list(next(iter(measured.values()))["headline"])
    lines = ["| backbone | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    return lines + [f"| {name} | " + " | ".join(f"{entry['headline'][k]:.3f}" for k in keys) + " |"
                    for name, entry in measured.items()]


def _measure_only(folder: Path, out: Path) -> int:
    """The competence of the committed backbone and ``folder`` side by side (a GPU-trained folder, measured on the
    CPU as every committed competence is): ``<out>/world_backbone_measured.{json,md}``."""
    world = _conf("world")["world"]
    world_backbone = _conf("world_backbone")["world_backbone"]
    measured = _measure(world, world_backbone, {"committed": ROOT / world_backbone["output_dir"], folder.name: folder})
    out.mkdir(parents=True, exist_ok=True)
    (out / "world_backbone_measured.json").write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")
    lines = [f"Competence of the committed backbone and {folder.name} (CPU).\n", *_headline_table(measured)]
    (out / "world_backbone_measured.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def _steps_that_fit(seconds: float, stage: Any, unet: Any, text_encoder: Any, tokenizer: Any, latents: Any,
                    captions: list[tuple[str, str]], scheduler_config: dict[str, Any], config: Any,
                    work_dir: Path) -> int:
    """Hundreds of ``stage`` steps that fit in ``seconds``, timed on 60 steps of throwaway copies (warm-up
    included, so the estimate errs short)."""
    from motiontune.world_models.backbone_training import train_diffusion

    probe_dir = work_dir / "probe"
    shutil.rmtree(probe_dir, ignore_errors=True)
    probe_dir.mkdir(parents=True)
    probe_steps = 60
    begun = time.monotonic()
    train_diffusion(copy.deepcopy(unet), copy.deepcopy(text_encoder), tokenizer, latents, captions, scheduler_config,
                    replace(config, progress_bar=False), probe_dir, "probe", replace(stage, steps=probe_steps), "probe")
    per_step = (time.monotonic() - begun) / probe_steps
    shutil.rmtree(probe_dir, ignore_errors=True)
    steps = max(100, int(seconds / per_step) // 100 * 100)
    print(f"probe: {per_step * 1000:.1f} ms per step -> {steps} steps in {seconds:.0f} s")
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--keep-directions", default=",".join(SPLIT["kept_directions"]),
                        help="translate/pan directions kept: one of each opposite pair")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train a fresh UNet (--layout) + text encoder with the full schedule instead of continuing")
    parser.add_argument("--temporal-conv-init", choices=("zero", "default"), default="zero",
                        help="with --from-scratch: the temporal convolutions' last layer at diffusers' zeros or "
                             "PyTorch's default initialisation")
    parser.add_argument("--stage-steps", default=None,
                        help="with --from-scratch: 'DIFFUSION,REFINE' steps instead of the pipeline's (a quick check)")
    parser.add_argument("--layout", choices=("unet3d", "animatediff"), default="unet3d",
                        help="with --from-scratch: the fresh UNet's family, ZeroScope's UNet3D (tiny_backbone) or "
                             "AnimateDiff's UNetMotionModel (tiny_animatediff: sinusoidal temporal position encoding)")
    parser.add_argument("--continue-from", type=Path, default=None,
                        help="without --from-scratch: continue this backbone folder (either family, e.g. a "
                             "--from-scratch output) instead of the committed one")
    parser.add_argument("--device", default="cpu", help="where the diffusion steps run: cpu, cuda")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="without --from-scratch: the continued stage's batch (default: the refine stage's)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="without --from-scratch: as many hundreds of steps as fit in this many seconds")
    parser.add_argument("--simplified-caption-share", type=float, default=None,
                        help="without --from-scratch: the continued stage's share of colour-free captions (VMC's "
                             "simplified prompt; default: the refine stage's)")
    parser.add_argument("--no-competence", action="store_true", help="train and save only (measure later)")
    parser.add_argument("--measure-only", type=Path, default=None,
                        help="no training: the competence of the committed backbone and this folder")
    args = parser.parse_args(argv)
    if args.measure_only:
        return _measure_only(args.measure_only.resolve(), args.out.resolve())
    if args.from_scratch and (args.seconds or args.batch_size or args.simplified_caption_share is not None):
        parser.error("--seconds, --batch-size and --simplified-caption-share are about the continued stage, not "
                     "--from-scratch")
    if args.from_scratch and args.continue_from:
        parser.error("--continue-from continues a trained backbone; --from-scratch starts a fresh one")
    if args.continue_from and not (args.continue_from / "model_index.json").is_file():
        parser.error(f"--continue-from {args.continue_from}: not a diffusers backbone folder (no model_index.json)")
    if not args.from_scratch and (args.temporal_conv_init != "zero" or args.stage_steps or args.layout != "unet3d"):
        parser.error("--temporal-conv-init, --stage-steps and --layout need --from-scratch")
    if args.layout == "animatediff" and args.temporal_conv_init != "zero":
        parser.error("--temporal-conv-init is about UNet3D's temporal convolutions; AnimateDiff has none")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    import torch
    from diffusers import AutoencoderKL, UNet3DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from motiontune.world.captions import appearance_caption
    from motiontune.world.generator import sample_world
    from motiontune.world.spec import WorldSpec
    from motiontune.world.vocabulary import opposite_direction
    from motiontune.backbone.layout import layout_for
    from motiontune.backbone.tiny import TinyBackboneSpec, build_tiny_backbone
    from motiontune.world_models.backbone_training import (TrainSplit, WorldBackboneConfig, encode_clips,
                                                           train_diffusion, world_sized_spec)

    world = _conf("world")["world"]
    world_backbone = _conf("world_backbone")["world_backbone"]
    committed = ROOT / world_backbone["output_dir"]   # the default backbone: what is continued and compared against
    parts = ROOT / world_backbone["training"]["parts_from"]   # world-t2v: the VAE, tokenizer and scheduler
    keep_directions = set(args.keep_directions.split(","))
    for direction in keep_directions:
        if opposite_direction(direction) in keep_directions:
            parser.error(f"--keep-directions keeps both {direction} and its opposite")

    spec = WorldSpec.from_params(world)
    # The stages' settings (the default's recipe); this experiment's own split, VAE and layout come from its flags.
    config = WorldBackboneConfig.from_params({**world_backbone["training"], "device": args.device})
    refine = config.refine  # what a continuation repeats, with the flag's caption share if given
    if args.simplified_caption_share is not None:  # checked before the clips are drawn and encoded
        refine = replace(refine, simplified_caption_share=args.simplified_caption_share)
        if problems := WorldBackboneConfig(continuation=refine).problems():
            parser.error(f"--simplified-caption-share: {'; '.join(problems)}")
    started = time.monotonic()
    samples = sample_world(spec, config.clips, split="train", seed=config.seed)
    split = TrainSplit(left_out_families=DROPPED_FAMILIES, kept_directions=tuple(sorted(keep_directions)))
    kept = [s for s in samples if split.keeps(s)]
    families: dict[str, int] = {}
    for sample in kept:
        families[sample.truth.family] = families.get(sample.truth.family, 0) + 1

    suffix = "_animatediff" if args.layout == "animatediff" else ""
    base = args.continue_from.resolve() if args.continue_from else committed
    if args.from_scratch:
        stem, trained = f"world_backbone_scratch{suffix}", out / f"world-t2v-scratch{suffix.replace('_', '-')}"
    elif args.continue_from:
        stem, trained = "world_backbone_continued", out / f"{base.name}-continued"
    else:
        stem, trained = "world_backbone_asymmetry", out / "world-t2v-asymmetric"
    shutil.rmtree(trained, ignore_errors=True)
    work_dir = out / f"{stem}_work"
    work_dir.mkdir(exist_ok=True)
    if args.from_scratch:
        staging = work_dir / "fresh"
        shutil.rmtree(staging, ignore_errors=True)
        section = "tiny_animatediff" if args.layout == "animatediff" else "tiny_backbone"
        tiny_spec = TinyBackboneSpec.from_dict(_conf("backbone")[section], section=section)
        build_tiny_backbone(staging, world_sized_spec(spec, tiny_spec, config.seed))
        # The fresh folder of the chosen family, with world-t2v's VAE, tokenizer and scheduler (same latents, same
        # noise schedule as the committed backbones: only the UNet and text encoder differ).
        copy_committed_parts(parts, staging, trained)
        unet = UNetMotionModel.from_pretrained(staging / "unet") if args.layout == "animatediff" \
            else UNet3DConditionModel.from_pretrained(staging / "unet")
        text_encoder = CLIPTextModel.from_pretrained(staging / "text_encoder")
        reset = reinitialise_temporal_conv_outputs(unet, config.seed) if args.temporal_conv_init == "default" else 0
    else:
        shutil.copytree(base, trained)
        unet_class = json.loads((trained / "unet" / "config.json").read_text(encoding="utf-8"))["_class_name"]
        unet = (UNetMotionModel if unet_class == "UNetMotionModel" else UNet3DConditionModel).from_pretrained(trained / "unet")
        text_encoder = CLIPTextModel.from_pretrained(trained / "text_encoder")
        reset = 0
    vae = AutoencoderKL.from_pretrained(trained / "vae")
    tokenizer = CLIPTokenizer.from_pretrained(str(trained / "tokenizer"))
    scheduler_config = json.loads((trained / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    latents = encode_clips(vae, np.stack([s.frames for s in kept])) * float(vae.config.scaling_factor)
    captions = [(s.caption, appearance_caption(s)) for s in kept]
    symmetry = world_backbone["competence"]["time_symmetry"]
    timesteps = [int(t) for t in symmetry["timesteps"]]
    initial_reversal_error = _init_reversal_error(unet, text_encoder, tokenizer, tuple(latents.shape[1:]), timesteps,
                                                  int(symmetry["seed"]))
    tag = f"{stem}-{sorted(keep_directions)}-{args.temporal_conv_init}-{args.layout}-{base.name}"
    if args.from_scratch:
        # The pipeline's schedule (its diffusion stage, then its refine stage), on the asymmetric split.
        stages = [(config.diffusion, "diffusion"), (config.refine, "refine")]
        if args.stage_steps:
            counts = [int(n) for n in args.stage_steps.split(",")]
            stages = [(replace(stage, steps=n), name) for (stage, name), n in zip(stages, counts, strict=True)]
    else:
        # The refine stage's objective and settings, its own draws (not the committed refine's batches again).
        stage = replace(refine, steps=args.steps, seed=(refine.seed or 0) + 100,
                        batch_size=args.batch_size or refine.batch_size)
        if args.seconds:
            stage = replace(stage, steps=_steps_that_fit(args.seconds, stage, unet, text_encoder, tokenizer, latents,
                                                         captions, scheduler_config, config, work_dir))
        stages = [(stage, "asymmetric_refine")]
    history: list[float] = []
    for stage, name in stages:
        history += train_diffusion(unet, text_encoder, tokenizer, latents, captions, scheduler_config, config,
                                   work_dir, f"{tag}-{name}-{asdict(stage)}", stage, name)
    unet.save_pretrained(trained / "unet")
    text_encoder.save_pretrained(trained / "text_encoder")
    training_seconds = time.monotonic() - started

    trained_name = "scratch" if args.from_scratch else "continued" if args.continue_from else "asymmetric"
    measured = {} if args.no_competence else _measure(world, world_backbone, {"committed": committed,
                                                                              trained_name: trained})
    report = {
        "mode": "from_scratch" if args.from_scratch else "continued", "continued_from": None if args.from_scratch else
        str(base.relative_to(ROOT) if base.is_relative_to(ROOT) else base),
        # What was trained, read from the UNet (a continued folder keeps its own family and initialisation).
        "layout": layout_for(unet).family,
        "temporal_conv_init": args.temporal_conv_init if args.from_scratch else None,
        "temporal_conv_layers_reset": reset, "initial_reversal_error_mean": initial_reversal_error,
        "stages": {name: asdict(stage) for stage, name in stages}, "keep_directions": sorted(keep_directions),
        "dropped_families": list(DROPPED_FAMILIES), "clips_kept": len(kept), "clips_total": len(samples),
        "families_kept": families, "first_loss": float(np.mean(history[:50])), "final_loss": float(np.mean(history[-50:])),
        "training_seconds": round(training_seconds, 1), "threads": torch.get_num_threads(), "device": args.device,
        "backbones": measured,
    }
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not measured:
        print(f"trained {trained} ({_steps_text(stages)}, {training_seconds:.0f} s); competence not measured")
        return 0
    steps = _steps_text(stages)
    fresh = ("AnimateDiff UNetMotionModel (sinusoidal temporal position encoding)" if args.layout == "animatediff"
             else f"UNet3D (temporal convolutions' last layer: {args.temporal_conv_init} init)")
    how = (f"fresh {fresh} + text encoder (reversal error at init {initial_reversal_error:.3f}), committed VAE"
           if args.from_scratch else f"continued from {'the committed backbone' if base == committed else base.name}"
           + (f" with {stages[0][0].simplified_caption_share:.0%} simplified (colour-free) captions"
              if args.simplified_caption_share is not None else ""))
    lines = [f"World backbone on the asymmetric split (issue 18 item 2), {how}: {steps} on {len(kept)} of "
             f"{len(samples)} train clips (translate/pan only {', '.join(sorted(keep_directions))}; no "
             f"{', '.join(DROPPED_FAMILIES)}), {training_seconds:.0f} s. Competence: 48 videos of fast translate "
             "prompts (8 directions cycled); ratios: loss under the condition / loss under the own caption, mean over "
             "t = 900, 700, 500, 300.\n", *_headline_table(measured)]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
