"""Print the artifact size of every method on the embedded tiny backbone, ZeroScope and AnimateDiff (no downloads).

Each method is built with its options from ``conf/base/parameters_train.yml`` (``train.<method>``) and prepared
on UNets built from their configs on the meta device (``motiontune.methods.artifact_size``): the tiny backbone
of ``conf/base/parameters_backbone.yml`` at the ``video`` size of ``conf/base/parameters.yml``, and ZeroScope v2
576w at 576x320, 24 frames. These are the numbers of README's methods table; the second table is README's
"Artifact size per backbone" (SD 1.5 + AnimateDiff motion adapters v1-5-2 and v1-5-3, 512x512, 16 frames)
(tests/motion/test_artifact_size.py checks that they agree). Usage::

    python scripts/artifact_sizes.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Runnable from a checkout without installing the package.
sys.path.insert(0, str(ROOT / "src"))

from motiontune.methods.artifact_size import (  # noqa: E402
    REAL_ARCHITECTURES,
    ZEROSCOPE,
    Architecture,
    artifact_sizes,
    format_megabytes,
)

METHODS = ("motion_embeddings", "vmc", "motionmatcher", "motiondirector")


def configured_methods(root: Path = ROOT) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{label: (method, options)}``: each method with its options as configured, plus Motion Embeddings' ``deep``."""
    train = yaml.safe_load((root / "conf" / "base" / "parameters_train.yml").read_text(encoding="utf-8"))["train"]
    methods = {method: (method, dict(train[method])) for method in METHODS}
    methods["motion_embeddings (deep)"] = ("motion_embeddings", {**train["motion_embeddings"], "blocks": "deep"})
    return methods


def tiny_architecture(root: Path = ROOT) -> Architecture:
    backbone = yaml.safe_load((root / "conf" / "base" / "parameters_backbone.yml").read_text(encoding="utf-8"))["backbone"]
    video = yaml.safe_load((root / "conf" / "base" / "parameters.yml").read_text(encoding="utf-8"))["video"]
    return Architecture.from_folder(root / backbone["pretrained_model"], video["num_frames"], video["height"], video["width"], name="tiny")


def sizes(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """``{method label: {"tiny": bytes, ZEROSCOPE.name: bytes}}``."""
    return artifact_sizes(configured_methods(root), [tiny_architecture(root), ZEROSCOPE])


def main() -> None:
    tiny = tiny_architecture()
    print(f"| method | tiny ({tiny.width}x{tiny.height}, {tiny.num_frames} frames) | ZeroScope ({ZEROSCOPE.width}x{ZEROSCOPE.height}, {ZEROSCOPE.num_frames} frames) | bytes (tiny / ZeroScope) |")
    print("|---|---:|---:|---:|")
    for label, by_architecture in sizes().items():
        small, large = by_architecture["tiny"], by_architecture[ZEROSCOPE.name]
        print(f"| `{label}` | {format_megabytes(small)} | {format_megabytes(large)} | {small} / {large} |")
    print()
    real = REAL_ARCHITECTURES
    print("| method | " + " | ".join(f"{a.name} ({a.width}x{a.height}, {a.num_frames} frames)" for a in real) + " |")
    print("|---|" + "---:|" * len(real))
    for label, by_architecture in artifact_sizes(configured_methods(), list(real)).items():
        print(f"| `{label}` | " + " | ".join(format_megabytes(by_architecture[a.name]) for a in real) + " |")


if __name__ == "__main__":
    main()
