"""Frechet Inception Distance between generated frames and a reference image set (design sec. 5).

FID (Heusel et al. 2017) fits a Gaussian to the Inception pool features of each image set and reports

    FD = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

Features come from the TorchScript Inception-v3 used by StyleGAN2-ADA/StyleGAN3 metrics and clean-fid,
``inception-2015-12-05.pt`` (a port of the TF 2015-12-05 graph that the original FID used), loaded from a
configured LOCAL path. Its calling contract, which :class:`InceptionFeatures` follows and any substitute
network must follow too:

    features = network(images, return_features=True)   # images: uint8 (N, 3, H, W) RGB in [0, 255]
                                                         # features: float (N, 2048) pool3 features

We resize every image to 299 x 299 (the network's native size) ourselves before the call, so sets of
mixed-size reference images batch together; the network then does no resizing of its own.

Without configured weights :func:`maybe_fid` returns None and logs one line; FID is never reported as 0.
Values from a few hundred frames are strongly biased upwards (the covariance of 2048-d features needs
thousands of samples) and are only comparable between runs that use the same sample counts.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from motiontune.errors import UserError
from motiontune.io.atomic import write_atomically
from motiontune.io.video import FRAME_SUFFIXES, VIDEO_SUFFIXES, read_video

logger = logging.getLogger(__name__)

INCEPTION_INPUT_SIZE = 299
INCEPTION_FEATURE_DIM = 2048
FID_SKIPPED_NO_WEIGHTS = "FID skipped: no Inception weights configured (evaluate.fid.inception_path)"
FID_SKIPPED_NO_REFERENCE = "FID skipped: no reference image set configured (evaluate.fid.reference_dir)"


class InsufficientSamplesError(ValueError, UserError):
    """Too few images on one side to estimate feature statistics."""


# --------------------------------------------------------------------------- statistics


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (unbiased, N - 1) of ``features`` (N >= 2, D), as float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {features.shape}")
    if features.shape[0] < 2:
        raise InsufficientSamplesError(f"need at least 2 feature vectors for a covariance, got {features.shape[0]}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    imaginary_tolerance: float = 1e-3,
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); means (D,), covariances (D, D).

    ``eps``: when ``sigma1 @ sigma2`` is singular (fewer samples than dimensions) its square root can come
    out non-finite; then ``eps * I`` is added to both covariances and the root recomputed (as pytorch-fid).
    ``imaginary_tolerance``: the root of a product of PSD matrices is real up to round-off; a larger
    imaginary part on its diagonal means the inputs are not covariances and raises ValueError.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {sigma1.shape}, sigma2 {sigma2.shape}"
        )
    difference = mu1 - mu2
    covariance_root = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covariance_root).all():
        logger.debug("FID: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covariance_root = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covariance_root):
        largest_imaginary = float(np.max(np.abs(np.diagonal(covariance_root).imag)))
        if largest_imaginary > imaginary_tolerance:
            raise ValueError(f"FID: imaginary component {largest_imaginary:.3g} in sqrtm(sigma1 sigma2)")
        covariance_root = covariance_root.real
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covariance_root))


# --------------------------------------------------------------------------- features


def _as_image_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """uint8 (N, H, W, 3) stacks and/or single (H, W, 3) images -> list of (H, W, 3) images."""
    if isinstance(images, np.ndarray):
        images = [images]
    result: list[np.ndarray] = []
    for item in images:
        item = np.asarray(item)
        if item.dtype != np.uint8 or item.shape[-1:] != (3,) or item.ndim not in (3, 4):
            raise ValueError(f"images must be uint8 (H, W, 3) or (N, H, W, 3), got {item.dtype} {item.shape}")
        result.extend(list(item) if item.ndim == 4 else [item])
    return result


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3), aspect ratio not kept (as the FID reference code).

    Area averaging when shrinking (no aliasing), bicubic when enlarging.
    """
    if image.shape[:2] == (size, size):
        return image
    shrinking = image.shape[0] * image.shape[1] > size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interpolation)


class InceptionFeatures:
    """Inception pool features (N, 2048) of uint8 RGB images, from a local TorchScript network.

    Args:
        weights_path: TorchScript file, e.g. ``inception-2015-12-05.pt`` (StyleGAN3 / clean-fid); see the
            module docstring for the calling contract.
        device: torch device the network runs on.
        batch_size: images per forward pass.
        input_size: side the images are resized to before the call (299 for Inception-v3).

    Raises:
        FileNotFoundError: ``weights_path`` does not exist.
    """

    def __init__(
        self,
        weights_path: str | os.PathLike[str],
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        input_size: int = INCEPTION_INPUT_SIZE,
    ) -> None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Inception weights not found: {path} (evaluate.fid.inception_path)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.weights_path = path
        self.batch_size = batch_size
        self.input_size = input_size
        with warnings.catch_warnings():
            # Recent torch releases deprecate TorchScript in favour of torch.export, but the published Inception
            # weights exist only as TorchScript; the warning would be noise on every evaluation.
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit\.load.*is deprecated", category=DeprecationWarning
            )
            self.network = torch.jit.load(str(path), map_location=self.device).eval()

    @property
    def description(self) -> str:
        """One line for the ``models`` entry of the metrics file."""
        return f"Inception (TorchScript): {self.weights_path.name}, input {self.input_size}px"

    @torch.no_grad()
    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Features (N, D) float64 of uint8 RGB images: an (N, H, W, 3) stack or a list of (H, W, 3) images."""
        image_list = _as_image_list(images)
        chunks: list[np.ndarray] = []
        for start in range(0, len(image_list), self.batch_size):
            batch_images = image_list[start : start + self.batch_size]
            batch = np.stack([resize_square(image, self.input_size) for image in batch_images])
            tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(self.device)  # uint8 NCHW
            features = self.network(tensor, return_features=True)
            chunks.append(features.reshape(features.shape[0], -1).float().cpu().numpy())
        if not chunks:
            return np.zeros((0, 0), dtype=np.float64)
        return np.concatenate(chunks).astype(np.float64)


# --------------------------------------------------------------------------- scores


def fid_score(
    generated_frames: np.ndarray | Sequence[np.ndarray],
    reference_images: np.ndarray | Sequence[np.ndarray],
    feature_extractor: Callable[[list[np.ndarray]], np.ndarray],
    min_samples: int = 2,
) -> float:
    """FID between generated frames and reference images (both uint8 RGB stacks or lists of images).

    Every generated frame counts as one image (frames of all videos pooled, as seed 002).
    ``feature_extractor``: any callable images -> features (N, D), normally :class:`InceptionFeatures`.
    ``min_samples``: fewest images accepted on either side (>= 2, needed for a covariance);
    InsufficientSamplesError below it.
    """
    generated = _as_image_list(generated_frames)
    reference = _as_image_list(reference_images)
    floor = max(min_samples, 2)
    for name, images in (("generated frames", generated), ("reference images", reference)):
        if len(images) < floor:
            raise InsufficientSamplesError(f"FID: {len(images)} {name}, need at least {floor} (min_samples)")
    mu_generated, sigma_generated = feature_statistics(feature_extractor(generated))
    mu_reference, sigma_reference = feature_statistics(feature_extractor(reference))
    return frechet_distance(mu_generated, sigma_generated, mu_reference, sigma_reference)


def maybe_fid(
    generated_frames: np.ndarray | Sequence[np.ndarray],
    reference_images: np.ndarray | Sequence[np.ndarray] | None,
    inception_path: str | os.PathLike[str] | None,
    device: str | torch.device = "cpu",
    min_samples: int = 2,
    batch_size: int = 64,
) -> float | None:
    """:func:`fid_score`, or None with one logged line when FID is not configured.

    Returns None (never 0) when ``inception_path`` is empty/None or ``reference_images`` is None/empty.
    A configured ``inception_path`` that does not exist raises FileNotFoundError: a typo must not
    silently drop the metric.
    """
    if not inception_path:
        logger.warning(FID_SKIPPED_NO_WEIGHTS)
        return None
    if reference_images is None or len(reference_images) == 0:
        logger.warning(FID_SKIPPED_NO_REFERENCE)
        return None
    extractor = InceptionFeatures(inception_path, device=device, batch_size=batch_size)
    return fid_score(generated_frames, reference_images, extractor, min_samples=min_samples)


# --------------------------------------------------------------------------- reference set


def _natural_key(path: Path) -> list[int | str]:
    """Sort key ordering ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def load_reference_images(
    reference_dir: str | os.PathLike[str],
    max_images: int | None = None,
    frames_fps: float = 8.0,
) -> list[np.ndarray]:
    """Every image (png/jpg/jpeg/webp) and every frame of every video under ``reference_dir``, recursively.

    Returns uint8 (H, W, 3) RGB images in natural path order (sizes may differ), at most ``max_images``
    (None: all). ``frames_fps``: rate assumed for still-image folders read as videos (unused for files).
    """
    root = Path(reference_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"FID reference directory not found: {root} (evaluate.fid.reference_dir)")
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=_natural_key)
    images: list[np.ndarray] = []
    for path in files:
        if max_images is not None and len(images) >= max_images:
            break
        suffix = path.suffix.lower()
        if suffix in FRAME_SUFFIXES:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        elif suffix in VIDEO_SUFFIXES:
            frames, _ = read_video(path, frames_fps=frames_fps)
            images.extend(list(frames))
    return images if max_images is None else images[:max_images]


def save_statistics(path: str | os.PathLike[str], mu: np.ndarray, sigma: np.ndarray) -> Path:
    """Store reference statistics as ``.npz`` (arrays only, no pickle) so a fixed reference set is featurised once."""
    return write_atomically(
        path,
        lambda temporary: np.savez(temporary, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64)),
        suffix=".npz",
    )


def load_statistics(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(mu (D,), sigma (D, D))`` written by :func:`save_statistics`."""
    with np.load(Path(path), allow_pickle=False) as data:
        return data["mu"], data["sigma"]
