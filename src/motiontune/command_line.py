"""Command-line helpers that need no Kedro: building the embedded backbone, promoting registered motions, exporting
motions (``motiontune export <motion> --format diffusers --output DIR``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from motiontune.backbone.tiny import TinyBackboneSpec, build_tiny_backbone
from motiontune.errors import UserError, exit_status_of
from motiontune.tracking import registry


# The tiny backbone of each family: its parameters section and default folder.
TINY_SECTIONS = {
    "unet3d": ("tiny_backbone", "data/06_models/backbones/tiny-t2v"),
    "animatediff": ("tiny_animatediff", "data/06_models/backbones/tiny-animatediff"),
}


def main(argv: list[str] | None = None) -> int:
    """The ``motiontune`` command; a user's mistake ends in its message and exit status 2."""
    return exit_status_of(lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="motiontune")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-tiny-backbone", help="build the tiny backbone with random weights (fast tests; not the trained default)")
    build.add_argument("--config", type=Path, default=Path("conf/base/parameters_backbone.yml"))
    build.add_argument("--family", choices=sorted(TINY_SECTIONS), default="unet3d", help="ZeroScope's layout or AnimateDiff's")
    build.add_argument("--out", type=Path, default=None, help="default: data/06_models/backbones/<tiny-t2v | tiny-animatediff>")
    registry.add_commands(commands)  # promote, motions: the MLflow model registry of learned motions
    _add_export_command(commands)
    args = parser.parse_args(argv)
    if args.command in ("promote", "motions"):
        return registry.run_command(args)
    if args.command == "export":
        return _export(args)

    if args.command == "build-tiny-backbone":
        config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
        section, default_out = TINY_SECTIONS[args.family]
        spec = TinyBackboneSpec.from_dict(config[section], section)
        out = build_tiny_backbone(args.out or Path(default_out), spec)
        print(f"built tiny backbone in {out}")
    return 0


class MotionNotFoundError(ValueError, UserError):
    """An export source that is neither an artifact folder nor a registered motion."""


def _add_export_command(commands: Any) -> None:
    from motiontune.methods.export import DEFAULT_SVD_RANK, FORMATS

    export = commands.add_parser(
        "export", help="export a learnt motion to a file other tools load (diffusers / peft LoRA)",
        description="Write DIR/pytorch_lora_weights.safetensors (diffusers' LoRA format) and DIR/motiontune_export.json.",
    )
    export.add_argument("motion", help="a motion artifact folder (motion.json + motion.safetensors), a registered motion's "
                                       "name (its @latest version) or a models:/motion-<name>@<alias> | /<version> URI")
    export.add_argument("--format", default="diffusers", help=f"one of {list(FORMATS)}")
    export.add_argument("--output", "-o", type=Path, required=True, help="the folder to write")
    export.add_argument("--rank", type=int, default=None, help=f"VMC: LoRA rank of the SVD of the weight deltas (default {DEFAULT_SVD_RANK})")
    export.add_argument("--backbone", default=None, help="VMC: the backbone to take the deltas from (default: the one in the manifest)")
    export.add_argument("--lora-scale", type=float, default=None, help="LoRA methods: the scale to bake in (default: the motion's)")
    export.add_argument("--tracking-uri", default=None, help=f"default: $MLFLOW_TRACKING_URI or {registry.DEFAULT_TRACKING_URI}")


def _export(args: argparse.Namespace) -> int:
    import tempfile

    from motiontune.methods.export import export_motion

    with tempfile.TemporaryDirectory(prefix="motiontune-export-") as scratch:
        folder = motion_folder(args.motion, Path(scratch), args.tracking_uri)
        result = export_motion(
            folder, args.output, format=args.format, rank=args.rank, backbone=args.backbone, lora_scale=args.lora_scale,
            label=None if Path(args.motion).is_dir() else args.motion,
        )
    for line in result.messages:
        print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout)
    return 0


def motion_folder(motion: str, scratch: Path, uri: str | None = None) -> Path:
    """The artifact folder of ``motion``: a folder as it is; a registered motion (``models:/...`` URI, or a name
    for ``models:/motion-<name>@latest``) downloaded from the MLflow registry into ``scratch``."""
    from motiontune.methods.artifact import MANIFEST_FILE

    if Path(motion).is_dir():
        return Path(motion)
    if not motion.startswith("models:/"):
        if "/" in motion or "\\" in motion or motion.startswith("."):
            raise MotionNotFoundError(f"{motion}: no such motion artifact folder")
        motion = f"models:/{registry.model_name(motion)}@latest"
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = uri or registry.tracking_uri()
    try:
        with registry.mlflow_uris(uri):
            resolved = registry.resolve_version(motion)
            if resolved is None:
                raise MotionNotFoundError(f"{motion}: not a models:/<name>@<alias> or models:/<name>/<version> URI")
            # The version the alias points at now; the model's files (the motion folder is one of its artifacts).
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{resolved[0]}/{resolved[1]}", dst_path=str(scratch)))
    except MlflowException as error:
        raise MotionNotFoundError(
            f"{motion}: not found in the MLflow registry at {uri} ({error.message.splitlines()[0]}); "
            "list the registered motions with `motiontune motions`"
        ) from None
    manifests = sorted(local.rglob(MANIFEST_FILE))
    if not manifests:
        raise MotionNotFoundError(f"{motion}: the registered model holds no motion artifact ({MANIFEST_FILE})")
    return manifests[0].parent


if __name__ == "__main__":
    raise SystemExit(main())
