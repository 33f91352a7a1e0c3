"""CLIP text similarity and temporal consistency of generated videos (design sec. 5, seed 002 sec. 4.2).

* **Text similarity**: mean over frames of ``cos(text embedding of the prompt, image embedding of the frame)``.
* **Temporal consistency**: mean cosine similarity of the frames' image embeddings over all frame pairs
  ``i < j`` (seed 002) or, as an option, over consecutive pairs ``(i, i + 1)`` only.

Both are plain cosines in ``[-1, 1]`` (no ``100 *`` scaling and no clamping at 0 as in CLIPScore), which is
the scale of seed 002 Table 1 (text similarity ~0.3, temporal consistency ~0.93).

The default backend is transformers' ``CLIPModel`` loaded with ``from_pretrained`` from a local directory or a
Hugging Face id (default ``openai/clip-vit-base-patch32``). An ``open_clip`` backend is available for users
who install the ``clip`` extra; ``open_clip`` is only imported when that backend is selected, because it
requires torchvision, which breaks transformers on CPU-only torch builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from motiontune.errors import UserError

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
# open_clip's name for the same architecture/weights as DEFAULT_CLIP_MODEL.
DEFAULT_OPEN_CLIP_MODEL = "ViT-B-32"
BACKENDS: tuple[str, ...] = ("transformers", "open_clip")
PAIR_MODES: tuple[str, ...] = ("all", "consecutive")

PairMode = Literal["all", "consecutive"]


class ClipModelNotFoundError(FileNotFoundError, UserError):
    """The configured CLIP model is neither a local directory nor loadable from the hub/cache."""


# --------------------------------------------------------------------------- pure math


def normalize_rows(embeddings: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """L2-normalise each row of ``embeddings`` (N, D) -> (N, D) float64.

    ``eps`` guards an all-zero row (its cosine with anything is then 0 instead of NaN).
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {embeddings.shape}")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, eps)


def frame_pairs(num_frames: int, pairs: PairMode = "all") -> tuple[np.ndarray, np.ndarray]:
    """Index arrays ``(first, second)``, each (P,), of the frame pairs averaged by temporal consistency.

    ``"all"``: every ``i < j`` (P = F (F - 1) / 2); ``"consecutive"``: ``(i, i + 1)`` (P = F - 1).
    """
    if pairs not in PAIR_MODES:
        raise ValueError(f"pairs must be one of {PAIR_MODES}, got {pairs!r}")
    if num_frames < 2:
        raise ValueError(f"temporal consistency needs at least 2 frames, got {num_frames}")
    if pairs == "all":
        first, second = np.triu_indices(num_frames, k=1)
        return first, second
    first = np.arange(num_frames - 1)
    return first, first + 1


def mean_pairwise_cosine(embeddings: np.ndarray, pairs: PairMode = "all") -> float:
    """Mean cosine similarity between rows of ``embeddings`` (F, D) over the pairs of :func:`frame_pairs`."""
    unit = normalize_rows(embeddings)
    first, second = frame_pairs(unit.shape[0], pairs)
    return float(np.mean(np.sum(unit[first] * unit[second], axis=1)))


def mean_cosine_to_vector(embeddings: np.ndarray, vector: np.ndarray) -> float:
    """Mean over rows of ``embeddings`` (F, D) of their cosine with ``vector`` (D,)."""
    unit = normalize_rows(embeddings)
    target = normalize_rows(np.asarray(vector, dtype=np.float64).reshape(1, -1))[0]
    if unit.shape[1] != target.shape[0]:
        raise ValueError(f"embedding sizes differ: frames {unit.shape[1]}, vector {target.shape[0]}")
    return float(np.mean(unit @ target))


# --------------------------------------------------------------------------- backends


class _ClipBackend(Protocol):
    """What :class:`ClipScorer` needs from a CLIP implementation."""

    def embed_images(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) RGB -> float (B, D) image embeddings (not normalised)."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """``len(texts)`` strings -> float (T, D) text embeddings (not normalised)."""
        ...


def _pooled(features: Any) -> torch.Tensor:
    """The projected embedding from ``get_*_features``.

    transformers < 5 returns the tensor itself; transformers 5 returns a ``BaseModelOutputWithPooling``
    whose ``pooler_output`` holds the projection.
    """
    if isinstance(features, torch.Tensor):
        return features
    return features.pooler_output


def _looks_like_hub_id(name: str) -> bool:
    """``owner/name`` (one slash, no path prefix): could be a Hugging Face id rather than a local path."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and "\\" not in name


def missing_local_model(model_id_or_path: str) -> bool:
    """True when ``model_id_or_path`` is no folder here and cannot be a Hugging Face id either (a typo'd path)."""
    return not Path(model_id_or_path).expanduser().exists() and not _looks_like_hub_id(model_id_or_path)


class _TransformersClip:
    """transformers ``CLIPModel`` + ``CLIPProcessor`` (tokenizer and image processor) from one directory/id."""

    def __init__(self, model_id_or_path: str, device: torch.device) -> None:
        from transformers import CLIPModel, CLIPProcessor

        local = Path(model_id_or_path).expanduser()
        if missing_local_model(model_id_or_path):
            raise ClipModelNotFoundError(
                f"CLIP model path does not exist: {model_id_or_path} "
                "(expected a directory with config.json, model weights, tokenizer and preprocessor files)"
            )
        source = str(local) if local.exists() else model_id_or_path
        try:
            self.model = CLIPModel.from_pretrained(source).to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(source)
        except OSError as error:
            where = "local directory" if local.exists() else "Hugging Face id (hub or local cache)"
            raise ClipModelNotFoundError(
                f"cannot load CLIP model from {where} {model_id_or_path!r}: {error}. "
                "Download it once with `huggingface-cli download` or point evaluate.clip.model at a local copy."
            ) from error
        self.device = device

    def embed_images(self, frames: np.ndarray) -> torch.Tensor:
        # channels_last stated explicitly: for frames 3 pixels high the processor would otherwise guess
        # channels-first and silently embed a transposed image.
        inputs = self.processor(images=list(frames), return_tensors="pt", input_data_format="channels_last")
        pixel_values = inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
        return _pooled(self.model.get_image_features(pixel_values=pixel_values))

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        # truncation: CLIP's text tower only has max_position_embeddings (77) positions.
        inputs = self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        return _pooled(self.model.get_text_features(**inputs))


def _import_open_clip() -> Any:
    """Import ``open_clip`` on demand, with an install hint when it is missing."""
    try:
        import open_clip
    except ImportError as error:
        raise ImportError(
            "the open_clip CLIP backend needs the `open_clip_torch` package: install the `clip` extra "
            "(pip install 'motiontune[clip]'; it requires torchvision matching your torch build), "
            "or use backend='transformers'"
        ) from error
    return open_clip


class _OpenClip:
    """open_clip model ``architecture`` with weights ``pretrained`` (a local checkpoint path or an open_clip tag)."""

    def __init__(self, architecture: str, pretrained: str | None, device: torch.device) -> None:
        open_clip = _import_open_clip()
        if pretrained is not None and not _looks_like_tag(pretrained) and not Path(pretrained).exists():
            raise ClipModelNotFoundError(f"open_clip checkpoint does not exist: {pretrained}")
        model, _, preprocess = open_clip.create_model_and_transforms(architecture, pretrained=pretrained)
        self.model = model.to(device).eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(architecture)
        self.device = device

    def embed_images(self, frames: np.ndarray) -> torch.Tensor:
        from PIL import Image

        # open_clip's preprocess is a torchvision transform on PIL images.
        batch = torch.stack([self.preprocess(Image.fromarray(frame)) for frame in frames]).to(self.device)
        return self.model.encode_image(batch)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))


def _looks_like_tag(pretrained: str) -> bool:
    """open_clip pretrained tags (``openai``, ``laion2b_s34b_b79k``) have no path separators or suffix."""
    return "/" not in pretrained and "\\" not in pretrained and "." not in pretrained


# --------------------------------------------------------------------------- scorer


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 (F>=1, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


class ClipScorer:
    """CLIP text similarity and temporal consistency of videos given as uint8 (F, H, W, 3) RGB frames.

    Args:
        model_id_or_path: for ``backend="transformers"``, a directory written by ``save_pretrained`` holding
            a ``CLIPModel`` and its ``CLIPProcessor`` files, or a Hugging Face id such as
            ``openai/clip-vit-base-patch32`` (needs the hub or a populated local cache). For
            ``backend="open_clip"``, the open_clip architecture name, e.g. ``ViT-B-32``.
        device: torch device the model runs on.
        batch_size: frames embedded per forward pass (bounds memory on long videos).
        backend: ``"transformers"`` (default) or ``"open_clip"`` (needs the ``clip`` extra).
        open_clip_pretrained: open_clip only: a local checkpoint path or an open_clip pretrained tag.

    Raises:
        ClipModelNotFoundError: the model path does not exist or cannot be loaded.
        ImportError: ``backend="open_clip"`` without ``open_clip_torch`` installed.
    """

    def __init__(
        self,
        model_id_or_path: str | Path = DEFAULT_CLIP_MODEL,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        backend: str = "transformers",
        open_clip_pretrained: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.backend_name = backend
        self.model_name = str(model_id_or_path)
        self._backend: _ClipBackend
        if backend == "transformers":
            self._backend = _TransformersClip(self.model_name, self.device)
        else:
            self._backend = _OpenClip(self.model_name, open_clip_pretrained, self.device)

    @property
    def description(self) -> str:
        """One line naming the backend and model, for the ``models`` entry of the metrics file."""
        return f"CLIP ({self.backend_name}): {self.model_name}"

    @torch.no_grad()
    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        """Image embeddings (F, D) float64 of uint8 (F, H, W, 3) frames, ``batch_size`` frames at a time."""
        frames = _check_frames(frames)
        chunks = [
            self._backend.embed_images(frames[start : start + self.batch_size]).float().cpu()
            for start in range(0, frames.shape[0], self.batch_size)
        ]
        return torch.cat(chunks).numpy().astype(np.float64)

    @torch.no_grad()
    def embed_text(self, prompt: str) -> np.ndarray:
        """Text embedding (D,) float64 of one prompt."""
        return self._backend.embed_texts([prompt])[0].float().cpu().numpy().astype(np.float64)

    def text_similarity(self, frames: np.ndarray, prompt: str) -> float:
        """Mean over frames of cos(text embedding of ``prompt``, image embedding of the frame), in [-1, 1].

        ``frames``: uint8 (F, H, W, 3) RGB.
        """
        return mean_cosine_to_vector(self.embed_images(frames), self.embed_text(prompt))

    def temporal_consistency(self, frames: np.ndarray, pairs: PairMode = "all") -> float:
        """Mean cosine similarity of the frames' image embeddings over frame pairs, in [-1, 1].

        ``frames``: uint8 (F >= 2, H, W, 3) RGB. ``pairs="all"``: every ``i < j`` (seed 002);
        ``"consecutive"``: ``(i, i + 1)``.
        """
        frames = _check_frames(frames)
        frame_pairs(frames.shape[0], pairs)  # validate before embedding, so a bad call costs no forward pass
        return mean_pairwise_cosine(self.embed_images(frames), pairs)
