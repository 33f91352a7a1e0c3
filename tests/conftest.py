"""Shared fixtures: the embedded tiny backbone, loaded through the same code as ZeroScope."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_BACKBONE = PROJECT_ROOT / "data" / "06_models" / "backbones" / "tiny-t2v"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def tiny_backbone():
    from motiontune.backbone.loading import load_backbone

    return load_backbone(TINY_BACKBONE, device="cpu")
