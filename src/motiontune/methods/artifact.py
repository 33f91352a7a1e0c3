"""The motion artifact: ``motion.safetensors`` (learned tensors only) + ``motion.json`` (manifest).

Both files are written under temporary names and renamed into place, tensors first; the manifest records
the tensors' sha256, so a directory left half-written by a crash never loads as a valid artifact.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from motiontune.errors import UserError
from motiontune.io.atomic import write_atomically

TENSORS_FILE = "motion.safetensors"
MANIFEST_FILE = "motion.json"
REQUIRED_MANIFEST_KEYS = (
    "method",
    "method_version",
    "backbone",
    "num_frames",
    "height",
    "width",
    "blocks",
    "hyperparameters",
    "inference_defaults",
    "train",
    "source_video",
    "train_prompt",
    "created_at",
    "tensors_sha256",
)


class ArtifactError(ValueError, UserError):
    """A motion artifact is missing, incomplete, tampered with or does not fit."""


@dataclass
class MotionArtifact:
    """Learned tensors keyed by module path, plus the manifest of design section 2."""

    tensors: dict[str, torch.Tensor]
    manifest: dict[str, Any] = field(default_factory=dict)
    # Reference inversions computed for this artifact at generation time, by (model, prompt, steps); never saved.
    inversions: dict[tuple[str, str, int], torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def method(self) -> str:
        return str(self.manifest["method"])


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_motion_artifact(directory: Path, artifact: MotionArtifact) -> Path:
    """Write ``motion.safetensors`` then ``motion.json`` into ``directory``; returns the directory."""
    directory = Path(directory)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in artifact.tensors.items()}
    write_atomically(directory / TENSORS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    manifest = dict(artifact.manifest)
    manifest["tensors_sha256"] = sha256_of_file(directory / TENSORS_FILE)
    missing = [key for key in REQUIRED_MANIFEST_KEYS if key not in manifest]
    if missing:
        raise ArtifactError(f"{directory}: manifest lacks {missing}")
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    write_atomically(directory / MANIFEST_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    return directory


def load_motion_artifact(directory: Path) -> MotionArtifact:
    """Read and check an artifact: manifest keys, tensor file hash, finite values. Never unpickles."""
    directory = Path(directory)
    manifest_path, tensors_path = directory / MANIFEST_FILE, directory / TENSORS_FILE
    if not manifest_path.is_file() or not tensors_path.is_file():
        raise ArtifactError(f"{directory}: not a motion artifact (needs {MANIFEST_FILE} and {TENSORS_FILE})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({error})") from None
    missing = [key for key in REQUIRED_MANIFEST_KEYS if key not in manifest]
    if missing:
        raise ArtifactError(f"{manifest_path}: manifest lacks {missing}")
    if sha256_of_file(tensors_path) != manifest["tensors_sha256"]:
        raise ArtifactError(f"{tensors_path}: content does not match the sha256 in {MANIFEST_FILE} (tampered or half-written)")
    tensors = load_file(str(tensors_path))
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ArtifactError(f"{tensors_path}: tensor '{key}' holds NaN or inf")
    return MotionArtifact(tensors=tensors, manifest=manifest)
