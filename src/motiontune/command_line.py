"""Command-line helpers that need no Kedro: building the embedded backbone, promoting registered motions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from motiontune.backbone.tiny import TinyBackboneSpec, build_tiny_backbone
from motiontune.errors import report_user_error, verbose_requested
from motiontune.tracking import registry


# The tiny backbone of each family: its parameters section and default folder.
TINY_SECTIONS = {
    "unet3d": ("tiny_backbone", "data/06_models/backbones/tiny-t2v"),
    "animatediff": ("tiny_animatediff", "data/06_models/backbones/tiny-animatediff"),
}


def main(argv: list[str] | None = None) -> int:
    """The ``motiontune`` command; a user's mistake ends in its message and exit status 2."""
    try:
        return _run(argv)
    except Exception as error:
        status = report_user_error(error, sys.stderr, verbose_requested())
        if status is None:
            raise
        return status


def _run(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="motiontune")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-tiny-backbone", help="build the embedded default backbone")
    build.add_argument("--config", type=Path, default=Path("conf/base/parameters_backbone.yml"))
    build.add_argument("--family", choices=sorted(TINY_SECTIONS), default="unet3d", help="ZeroScope's layout or AnimateDiff's")
    build.add_argument("--out", type=Path, default=None, help="default: data/06_models/backbones/<tiny-t2v | tiny-animatediff>")
    registry.add_commands(commands)  # promote, motions: the MLflow model registry of learned motions
    args = parser.parse_args(argv)
    if args.command in ("promote", "motions"):
        return registry.run_command(args)

    if args.command == "build-tiny-backbone":
        config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
        section, default_out = TINY_SECTIONS[args.family]
        spec = TinyBackboneSpec.from_dict(config[section], section)
        out = build_tiny_backbone(args.out or Path(default_out), spec)
        print(f"built tiny backbone in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
