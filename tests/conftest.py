"""Shared fixtures: the embedded tiny backbone, loaded through the same code as ZeroScope."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Under pytest-xdist the cores are shared by the workers (and the kedro/dvc subprocesses they start): one
# worker's torch must not take them all. Set before torch is imported.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_BACKBONE = PROJECT_ROOT / "data" / "06_models" / "backbones" / "tiny-t2v"
# The AnimateDiff twin: a saved AnimateDiffPipeline (UNetMotionModel), `motiontune build-tiny-backbone --family animatediff`.
TINY_ANIMATEDIFF = PROJECT_ROOT / "data" / "06_models" / "backbones" / "tiny-animatediff"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def load_script() -> Callable[[str], ModuleType]:
    """Import a script of ``benchmarks/`` or ``scripts/`` (not a package) by its path from the project root."""

    def load(relative: str) -> ModuleType:
        path = PROJECT_ROOT / relative
        spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_") + "_script", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_backbone():
    """Shared by many tests (loading it once keeps the suite fast), so every test must leave it as it found it:
    its UNet's weights and attention processors are checked when the session ends."""
    yield from _shared_backbone(TINY_BACKBONE)


@pytest.fixture(scope="session")
def tiny_animatediff():
    """The tiny AnimateDiff backbone, loaded through the same code as a real AnimateDiffPipeline folder; shared
    like :func:`tiny_backbone` (left unchanged by every test)."""
    yield from _shared_backbone(TINY_ANIMATEDIFF)


@pytest.fixture(scope="session", params=["unet3d", "animatediff"])
def tiny_backbone_of_each_family(request):
    """The tiny backbone of each family (ZeroScope's layout, AnimateDiff's), for tests every family must pass."""
    return request.getfixturevalue("tiny_backbone" if request.param == "unet3d" else "tiny_animatediff")


def _shared_backbone(path: Path):
    import torch

    from motiontune.backbone.loading import load_backbone

    backbone = load_backbone(path, device="cpu")
    weights = {name: tensor.detach().clone() for name, tensor in backbone.unet.state_dict().items()}
    processors = {name: type(processor) for name, processor in backbone.unet.attn_processors.items()}
    yield backbone
    now = backbone.unet.state_dict()
    changed = sorted(name for name in set(weights) | set(now)
                     if name not in weights or name not in now or not torch.equal(weights[name], now[name]))
    assert not changed, f"a test left the shared tiny backbone's UNet changed: {changed[:5]}"
    assert {name: type(processor) for name, processor in backbone.unet.attn_processors.items()} == processors, \
        "a test left other attention processors on the shared tiny backbone"

TINY_CLIP_WORDS = ("a", "red", "blue", "square", "circle", "moving", "left", "right")
TINY_CLIP_IMAGE_SIZE = 32
TINY_CLIP_TEXT_LENGTH = 16


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight CLIPModel + CLIPTokenizer + CLIP image processor saved with ``save_pretrained``."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer

    try:  # transformers >= 5 without torchvision: the PIL backend is the one that works on CPU torch
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor

    from motiontune.backbone.tokenizer import write_clip_tokenizer

    out_dir = tmp_path_factory.mktemp("tiny_clip")
    write_clip_tokenizer(out_dir, TINY_CLIP_WORDS, TINY_CLIP_TEXT_LENGTH)
    vocab_size = len(json.loads((out_dir / "vocab.json").read_text(encoding="utf-8")))
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": TINY_CLIP_TEXT_LENGTH,
        # build_bpe_vocabulary appends BOS then EOS as the last two ids.
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": TINY_CLIP_IMAGE_SIZE,
        "patch_size": 8,
    }
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=16))
    model.save_pretrained(out_dir)
    image_processor = ImageProcessor(
        size={"shortest_edge": TINY_CLIP_IMAGE_SIZE},
        crop_size={"height": TINY_CLIP_IMAGE_SIZE, "width": TINY_CLIP_IMAGE_SIZE},
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=CLIPTokenizer.from_pretrained(out_dir))
    processor.save_pretrained(out_dir)
    return out_dir
