"""Tests for CLIP text similarity and temporal consistency (design sec. 5).

Expected values are worked out by hand on small embeddings, or recomputed here straight from
``CLIPModel.get_text_features`` / ``get_image_features`` without going through the code under test.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from motiontune.metrics.clip_scores import (
    ClipModelNotFoundError,
    ClipScorer,
    frame_pairs,
    mean_cosine_to_vector,
    mean_pairwise_cosine,
)

# Three 2-d embeddings with known pairwise cosines: cos(0,1) = 0, cos(0,2) = cos(1,2) = 1/sqrt(2).
# Norms differ on purpose (2, 3, sqrt 2) so un-normalised dot products would give other numbers.
HAND_EMBEDDINGS = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
HAND_ALL_PAIRS = (0.0 + 1 / math.sqrt(2) + 1 / math.sqrt(2)) / 3
HAND_CONSECUTIVE = (0.0 + 1 / math.sqrt(2)) / 2


@pytest.fixture(scope="module")
def scorer(tiny_clip_dir: Path) -> ClipScorer:
    return ClipScorer(tiny_clip_dir, device="cpu", batch_size=4)


def _random_frames(seed: int, num_frames: int, height: int = 24, width: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(num_frames, height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- pure math


def test_frame_pairs_all_and_consecutive() -> None:
    first, second = frame_pairs(4, "all")
    assert sorted(zip(first.tolist(), second.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    first, second = frame_pairs(4, "consecutive")
    assert list(zip(first.tolist(), second.tolist())) == [(0, 1), (1, 2), (2, 3)]


def test_mean_pairwise_cosine_all_vs_consecutive_by_hand() -> None:
    assert mean_pairwise_cosine(HAND_EMBEDDINGS, "all") == pytest.approx(HAND_ALL_PAIRS, abs=1e-12)
    assert mean_pairwise_cosine(HAND_EMBEDDINGS, "consecutive") == pytest.approx(HAND_CONSECUTIVE, abs=1e-12)
    assert HAND_ALL_PAIRS != pytest.approx(HAND_CONSECUTIVE)


def test_mean_cosine_to_vector_by_hand() -> None:
    # cos([1,0],[1,1]) = cos([0,5],[1,1]) = 1/sqrt(2); cos([-1,0],[1,1]) = -1/sqrt(2)
    embeddings = np.array([[1.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    expected = (1 / math.sqrt(2) + 1 / math.sqrt(2) - 1 / math.sqrt(2)) / 3
    assert mean_cosine_to_vector(embeddings, np.array([1.0, 1.0])) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("bad", [{"num_frames": 1, "pairs": "all"}, {"num_frames": 3, "pairs": "every"}])
def test_frame_pairs_rejects_bad_input(bad: dict) -> None:
    with pytest.raises(ValueError):
        frame_pairs(bad["num_frames"], bad["pairs"])


# --------------------------------------------------------------------------- scorer on a tiny CLIP


def test_identical_frames_are_perfectly_consistent(scorer: ClipScorer) -> None:
    frames = np.repeat(_random_frames(seed=1, num_frames=1), 5, axis=0)
    assert scorer.temporal_consistency(frames, pairs="all") == pytest.approx(1.0, abs=1e-6)
    assert scorer.temporal_consistency(frames, pairs="consecutive") == pytest.approx(1.0, abs=1e-6)


def test_different_frames_are_less_consistent(scorer: ClipScorer) -> None:
    assert scorer.temporal_consistency(_random_frames(seed=2, num_frames=4)) < 1.0 - 1e-4


def test_temporal_consistency_pairs_use_the_embeddings(scorer: ClipScorer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scorer, "embed_images", lambda frames: HAND_EMBEDDINGS)
    frames = _random_frames(seed=3, num_frames=3)
    assert scorer.temporal_consistency(frames, pairs="all") == pytest.approx(HAND_ALL_PAIRS, abs=1e-12)
    assert scorer.temporal_consistency(frames, pairs="consecutive") == pytest.approx(HAND_CONSECUTIVE, abs=1e-12)


def _manual_text_image_cosines(model_dir: Path, frames: np.ndarray, prompt: str) -> np.ndarray:
    """cos(text, frame) per frame, straight from CLIPModel (transformers 4 returns tensors, 5 output objects).

    Frames go in as PIL images, whose channel layout the processor cannot misread.
    """
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        text = model.get_text_features(**processor(text=[prompt], return_tensors="pt"))
        pixel_values = processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")["pixel_values"]
        image = model.get_image_features(pixel_values=pixel_values)
    text = text if isinstance(text, torch.Tensor) else text.pooler_output
    image = image if isinstance(image, torch.Tensor) else image.pooler_output
    return torch.nn.functional.cosine_similarity(image, text, dim=-1).numpy()


def test_text_similarity_matches_manual_cosine_for_one_frame(scorer: ClipScorer, tiny_clip_dir: Path) -> None:
    frame = _random_frames(seed=4, num_frames=1)
    prompt = "a red square moving left"
    expected = float(_manual_text_image_cosines(tiny_clip_dir, frame, prompt)[0])
    similarity = scorer.text_similarity(frame, prompt)
    assert -1.0 <= similarity <= 1.0
    assert similarity == pytest.approx(expected, abs=1e-5)


def test_text_similarity_is_the_mean_over_frames(scorer: ClipScorer, tiny_clip_dir: Path) -> None:
    frames = _random_frames(seed=5, num_frames=6)  # more than batch_size=4: two batches
    prompt = "a blue circle moving right"
    expected = float(np.mean(_manual_text_image_cosines(tiny_clip_dir, frames, prompt)))
    assert scorer.text_similarity(frames, prompt) == pytest.approx(expected, abs=1e-5)


def test_frames_three_pixels_high_are_read_channels_last(scorer: ClipScorer, tiny_clip_dir: Path) -> None:
    frames = _random_frames(seed=7, num_frames=2, height=3, width=20)
    prompt = "a red circle"
    expected = float(np.mean(_manual_text_image_cosines(tiny_clip_dir, frames, prompt)))
    assert scorer.text_similarity(frames, prompt) == pytest.approx(expected, abs=1e-5)


def test_bad_frames_are_rejected(scorer: ClipScorer) -> None:
    with pytest.raises(ValueError, match="uint8"):
        scorer.text_similarity(np.zeros((2, 8, 8, 3), dtype=np.float32), "a red square")
    with pytest.raises(ValueError, match="at least 2 frames"):
        scorer.temporal_consistency(_random_frames(seed=6, num_frames=1))


def test_missing_model_path_gives_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_clip"
    with pytest.raises(ClipModelNotFoundError, match="does not exist") as caught:
        ClipScorer(missing)
    assert str(missing) in str(caught.value)


def test_open_clip_backend_without_package_says_install_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes `import open_clip` raise ImportError
    with pytest.raises(ImportError, match=r"`clip` extra"):
        ClipScorer("ViT-B-32", backend="open_clip")
