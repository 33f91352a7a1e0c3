"""Kedro datasets for motiontune's files; thin wrappers around the library's readers and writers."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from kedro.io import AbstractDataset, DatasetError
from safetensors.torch import load_file, save_file

from motiontune.io.clip import VideoClip
from motiontune.io.video import read_video, write_video
from motiontune.metrics.previews import save_png
from motiontune.io.atomic import write_atomically
from motiontune.methods.artifact import MotionArtifact, load_motion_artifact, save_motion_artifact


class VideoDataset(AbstractDataset[VideoClip, VideoClip]):
    """An H.264 mp4 file read and written as a :class:`VideoClip` (written atomically)."""

    def __init__(self, filepath: str, crf: int = 18, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self._crf = crf
        self.metadata = metadata

    def load(self) -> VideoClip:
        frames, fps = read_video(Path(self._filepath))
        return VideoClip(frames=frames, fps=fps)

    def save(self, data: VideoClip) -> None:
        if not isinstance(data, VideoClip):
            raise DatasetError(f"{self._filepath}: expected a VideoClip, got {type(data).__name__}")
        write_video(Path(self._filepath), data.frames, data.fps, crf=self._crf)

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "crf": self._crf}


class TensorsDataset(AbstractDataset[dict[str, torch.Tensor], dict[str, torch.Tensor]]):
    """A dict of tensors in one safetensors file (no pickle)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, torch.Tensor]:
        return load_file(str(self._filepath))

    def save(self, data: dict[str, torch.Tensor]) -> None:
        tensors = {key: value.detach().cpu().contiguous() for key, value in data.items()}
        write_atomically(Path(self._filepath), lambda p: save_file(tensors, str(p)))

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class MotionArtifactDataset(AbstractDataset[MotionArtifact, MotionArtifact]):
    """A motion artifact folder; ``filepath`` is its ``motion.json`` (so partitions are found by that file)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> MotionArtifact:
        return load_motion_artifact(Path(self._filepath).parent)

    def save(self, data: MotionArtifact) -> None:
        save_motion_artifact(Path(self._filepath).parent, data)

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class PngDataset(AbstractDataset[np.ndarray, np.ndarray]):
    """A uint8 (H, W, 3) RGB image as PNG, written atomically."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> np.ndarray:
        from PIL import Image

        with Image.open(Path(self._filepath)) as image:
            return np.asarray(image.convert("RGB"))

    def save(self, data: np.ndarray) -> None:
        save_png(Path(self._filepath), data)

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
