"""A tiny CLIP trained on the motion world, so CLIP metrics mean something where real CLIP cannot be downloaded.

    config = WorldClipConfig.from_params(params["world_clip"]["training"])
    summary = train_world_clip(out_dir, spec, config)   # CLIPModel + CLIPProcessor folder in out_dir
    ClipScorer(out_dir).text_similarity(frames, "a blue square")   # the metric code real CLIP goes through

The model is transformers' ``CLIPModel`` (ViT image tower, transformer text tower) saved with
``save_pretrained`` next to a ``CLIPProcessor``, exactly what ``evaluate.clip.model`` expects of a local copy of
``openai/clip-vit-base-patch32``. It learns from single frames of the world's train split, so it knows
appearance (colour, shape), not motion: a frame cannot show a direction. Captions are the appearance caption
("a red circle", the form of benchmark target prompts) or the full caption ("a red circle moving right"),
both positives of the frame.

Loss: CLIP's symmetric cross-entropy over image-text logits scaled by a learnt temperature (Radford et al.
2021: logit scale initialised to ln(1/0.07), clamped at 100). A batch holds ``images_per_class`` frames of
every colour x shape; captions of the same colour and shape are all positives of an image (the targets
spread evenly over them), so repeated classes in a batch are not counted as negatives.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from motiontune.backbone.tokenizer import write_clip_tokenizer
from motiontune.io.atomic import replace_folder
from motiontune.training.schedules import warmup_cosine_share
from motiontune.training.steps import run_steps
from motiontune.world.captions import appearance_caption, world_vocabulary
from motiontune.world.generator import sample_world
from motiontune.sections import build_section
from motiontune.world.spec import WorldSpec
from motiontune.world.vocabulary import noun_phrase

logger = logging.getLogger(__name__)

# CLIP's initial temperature and the cap on its learnt logit scale (Radford et al. 2021, sec. 2.5).
INITIAL_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = 100.0


@dataclass(frozen=True)
class WorldClipArchitecture:
    """Sizes of the two towers (transformers ``CLIPTextConfig`` / ``CLIPVisionConfig`` fields)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    text_layers: int = 2
    vision_layers: int = 3
    attention_heads: int = 4
    patch_size: int = 4
    projection_dim: int = 32
    text_max_length: int = 16


@dataclass(frozen=True)
class WorldClipConfig:
    """``world_clip.training`` parameters (conf/base/parameters_world_clip.yml)."""

    seed: int = 0
    clips: int = 2000
    steps: int = 1500
    images_per_class: int = 4
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    full_caption_share: float = 0.5
    evaluation_clips: int = 480
    architecture: WorldClipArchitecture = WorldClipArchitecture()
    log_every: int = 100
    threads: int | None = None
    progress_bar: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> WorldClipConfig:
        return build_section(cls, params, "world_clip.training")

    def problems(self) -> list[str]:
        """Range errors, one line each (:func:`~motiontune.sections.build_section` raises them together)."""
        problems = []
        if self.clips < 1 or self.evaluation_clips < 1:
            problems.append("clips, evaluation_clips: must be at least 1")
        if self.steps < 0 or self.images_per_class < 1 or self.learning_rate <= 0:
            problems.append("steps, images_per_class, learning_rate: steps >= 0, images_per_class >= 1 and learning_rate > 0 are required")
        if not 0 <= self.full_caption_share <= 1:
            problems.append(f"full_caption_share: must be in [0, 1], got {self.full_caption_share}")
        return problems


def _image_processor(side: int) -> Any:
    try:  # transformers >= 5 without torchvision: the PIL backend is the one that works on CPU torch
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor
    # The frame is the image: resized to its own size and centre-cropped to all of it (CLIP's mean/std kept).
    return ImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})


def build_world_clip(out_dir: Path, spec: WorldSpec, config: WorldClipConfig) -> tuple[Any, Any]:
    """Random-weight ``CLIPModel`` and its ``CLIPProcessor`` (tokenizer: every word of the world is one token)."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer

    arch = config.architecture
    out_dir.mkdir(parents=True, exist_ok=True)
    write_clip_tokenizer(out_dir, world_vocabulary(spec), arch.text_max_length)
    vocab_size = len(json.loads((out_dir / "vocab.json").read_text(encoding="utf-8")))
    text_config = {
        "vocab_size": vocab_size, "hidden_size": arch.hidden_size, "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.text_layers, "num_attention_heads": arch.attention_heads,
        "max_position_embeddings": arch.text_max_length,
        # build_bpe_vocabulary appends BOS then EOS as the last two ids.
        "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1, "pad_token_id": vocab_size - 1,
    }
    vision_config = {
        "hidden_size": arch.hidden_size, "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.vision_layers, "num_attention_heads": arch.attention_heads,
        "image_size": min(spec.height, spec.width), "patch_size": arch.patch_size,
    }
    torch.manual_seed(config.seed)
    model = CLIPModel(CLIPConfig(text_config=text_config, vision_config=vision_config,
                                 projection_dim=arch.projection_dim, logit_scale_init_value=INITIAL_LOGIT_SCALE))
    processor = CLIPProcessor(image_processor=_image_processor(min(spec.height, spec.width)),
                              tokenizer=CLIPTokenizer.from_pretrained(out_dir))
    return model, processor


def appearance_prompts(spec: WorldSpec) -> list[tuple[str, str, str]]:
    """(colour, shape, "a red circle") for every colour x shape of the world."""
    return [(colour, shape, noun_phrase(colour, shape)) for colour in spec.colours for shape in spec.shapes]


def zero_shot_accuracy(scorer: Any, spec: WorldSpec, config: WorldClipConfig) -> dict[str, float]:
    """Colour and shape accuracy of argmax over the appearance prompts, on frames of unseen clips.

    ``scorer``: a :class:`motiontune.metrics.clip_scores.ClipScorer` (the metric's own code path). The
    evaluation clips come from split ``all`` (held-out families included) with another seed than training.
    """
    from motiontune.metrics.clip_scores import normalize_rows

    prompts = appearance_prompts(spec)
    texts = normalize_rows(np.stack([scorer.embed_text(text) for _, _, text in prompts]))
    samples = sample_world(spec, config.evaluation_clips, split="all", seed=config.seed + 1)
    # One frame per clip, cycling through the frame index so first and last frames are both seen.
    frames = np.stack([s.frames[i % len(s.frames)] for i, s in enumerate(samples)])
    best = (normalize_rows(scorer.embed_images(frames)) @ texts.T).argmax(axis=1)
    colour_hits = [prompts[b][0] == s.colour for b, s in zip(best, samples)]
    shape_hits = [prompts[b][1] == s.shape for b, s in zip(best, samples)]
    both = [c and h for c, h in zip(colour_hits, shape_hits)]
    return {
        "frames": len(samples),
        "colour_accuracy": float(np.mean(colour_hits)),
        "shape_accuracy": float(np.mean(shape_hits)),
        "colour_and_shape_accuracy": float(np.mean(both)),
        "colour_chance": 1 / len(spec.colours),
        "shape_chance": 1 / len(spec.shapes),
    }


def contrastive_loss(logits_per_image: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy of (B, B) image-text logits; ``positives`` (B, B) bool, True where texts match.

    Each row's target spreads evenly over its positives (CLIP's one-hot target when a batch has no repeats).
    """
    def spread_cross_entropy(logits: torch.Tensor, matches: torch.Tensor) -> torch.Tensor:
        targets = matches / matches.sum(1, keepdim=True)
        return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()

    matches = positives.float()
    return (spread_cross_entropy(logits_per_image, matches) + spread_cross_entropy(logits_per_image.T, matches.T)) / 2


def train_world_clip(out_dir: Path, spec: WorldSpec, config: WorldClipConfig) -> dict[str, Any]:
    """Train the world CLIP, save it to ``out_dir`` (replaced only once complete); returns its summary.

    The summary (losses, zero-shot colour/shape accuracy read through ``ClipScorer``, timings) is also written
    as ``out_dir/training_summary.json``.
    """
    from motiontune.metrics.clip_scores import ClipScorer

    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model, processor = build_world_clip(staging, spec, config)
    started = time.monotonic()
    samples = sample_world(spec, config.clips, split="train", seed=config.seed)
    classes = {(colour, shape): index for index, (colour, shape, _) in enumerate(appearance_prompts(spec))}
    by_class: dict[int, list[int]] = {index: [] for index in classes.values()}
    for position, sample in enumerate(samples):
        by_class[classes[(sample.colour, sample.shape)]].append(position)
    missing = [name for name, index in classes.items() if not by_class[index]]
    if missing:
        raise ValueError(f"world_clip: {config.clips} training clips do not show every colour and shape "
                         f"(missing {missing[:3]}...); raise world_clip.training.clips")

    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    labels = torch.arange(len(classes)).repeat_interleave(config.images_per_class)
    positives = labels[:, None] == labels[None, :]
    history: list[float] = []
    model.train()

    def step_fn(step: int) -> float:
        for group in optimizer.param_groups:
            # Linear warmup, then cosine decay to 0 (CLIP's schedule).
            group["lr"] = config.learning_rate * warmup_cosine_share(step, config.steps, config.warmup_steps)
        frames, texts = [], []
        for label in labels.tolist():
            members = by_class[label]
            sample = samples[members[int(torch.randint(len(members), (1,), generator=generator))]]
            frames.append(sample.frames[int(torch.randint(len(sample.frames), (1,), generator=generator))])
            full = bool(torch.rand(1, generator=generator) < config.full_caption_share)
            texts.append(sample.caption if full else appearance_caption(sample))
        inputs = processor(text=texts, images=frames, return_tensors="pt", padding=True, truncation=True,
                           input_data_format="channels_last")
        logits = model(**inputs).logits_per_image
        loss = contrastive_loss(logits, positives)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))
        return loss.item()

    # No checkpoints (unlike the world backbone's stages): a killed run starts again from step 0.
    run_steps("world clip", config.steps, step_fn, history=history, progress_bar=config.progress_bar,
              report_every=config.log_every, log_progress=True, bar_interval=5)
    model.eval()
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    training_seconds = time.monotonic() - started

    accuracy = zero_shot_accuracy(ClipScorer(staging, device="cpu"), spec, config)
    summary = {
        "clips": config.clips,
        "steps": config.steps,
        "batch_size": len(labels),
        "first_loss": float(np.mean(history[:config.log_every])) if history else None,
        "final_loss": float(np.mean(history[-config.log_every:])) if history else None,
        # Uniform logits give log(batch); all mass on the positives gives log(images_per_class).
        "uniform_loss": float(math.log(len(labels))),
        "perfect_loss": float(math.log(config.images_per_class)),
        "logit_scale": float(model.logit_scale.exp().item()),
        "zero_shot": accuracy,
        "training_seconds": round(training_seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": asdict(config),
    }
    (staging / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    replace_folder(staging, out_dir)
    logger.info("world clip: zero-shot colour %.3f, shape %.3f", accuracy["colour_accuracy"], accuracy["shape_accuracy"])
    return summary
