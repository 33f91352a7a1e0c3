"""Tests for the Frechet distance, feature statistics, the TorchScript feature loader and FID skipping.

Expected numbers are closed forms worked out by hand:
* diagonal Gaussians: FD = ||mu1 - mu2||^2 + sum(s1 + s2 - 2 sqrt(s1 s2));
* equal covariances (any, non-diagonal): FD = ||mu1 - mu2||^2;
* solid-colour images through a network whose features are the channel means: the generated set is the
  reference set shifted by a constant colour, so the feature covariances are equal and FD = ||shift||^2.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from motiontune.metrics.fid import (
    FID_SKIPPED_NO_REFERENCE,
    FID_SKIPPED_NO_WEIGHTS,
    InceptionFeatures,
    InsufficientSamplesError,
    feature_statistics,
    fid_score,
    frechet_distance,
    load_reference_images,
    load_statistics,
    maybe_fid,
    save_statistics,
)

FEATURE_INPUT_SIZE = 299


class ChannelMeanNetwork(torch.nn.Module):
    """Stand-in for inception-2015-12-05.pt with the same call contract.

    ``forward(uint8 (N, 3, 299, 299), return_features=True) -> (N, 3)``: a 1x1 convolution with identity
    weights (so the features are exactly the channel means in [0, 255]) followed by global average pooling.
    Raises on any other dtype or size, so the test notices if the caller breaks the contract.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Conv2d(3, 3, kernel_size=1, bias=False)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1))

    def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise RuntimeError("expected uint8 images")
        if images.shape[1] != 3 or images.shape[2] != 299 or images.shape[3] != 299:
            raise RuntimeError("expected (N, 3, 299, 299) images")
        if not return_features:
            raise RuntimeError("expected return_features=True")
        return self.mix(images.float()).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def feature_network_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "tiny-features.pt"
    torch.jit.script(ChannelMeanNetwork()).save(str(path))
    return path


def _solid_images(colors: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (N, height, width, 3) images, image i filled with colors[i]."""
    return np.broadcast_to(colors[:, None, None, :], (len(colors), height, width, 3)).astype(np.uint8)


# Reference colours kept away from 0/255 so shifting them never clips.
REFERENCE_COLORS = np.array(
    [[40, 60, 80], [200, 30, 90], [120, 120, 40], [60, 210, 150], [90, 90, 200], [160, 50, 220]], dtype=np.int64
)
COLOR_SHIFT = np.array([10, -5, 3])
SHIFT_FID = 10**2 + 5**2 + 3**2  # 134


# --------------------------------------------------------------------------- Frechet distance


def test_frechet_distance_diagonal_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    # ||mu1-mu2||^2 = 1 + 0 + 4 = 5; traces: (1+4-2*2) + (4+1-2*2) + (9+0.25-2*1.5) = 8.25
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(13.25, abs=1e-9)


def test_frechet_distance_equal_non_diagonal_covariances_is_mean_distance() -> None:
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(6, 6))
    sigma = basis @ basis.T + np.eye(6)  # symmetric positive definite, far from diagonal
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = float(np.sum((mu1 - mu2) ** 2))
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(expected, rel=1e-7)


def test_frechet_distance_of_identical_statistics_is_zero() -> None:
    features = np.random.default_rng(1).normal(size=(200, 16))
    mu, sigma = feature_statistics(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_frechet_distance_with_singular_covariances_stays_finite() -> None:
    # 5 samples in 10 dimensions: rank-4 covariance, the case that needs the eps offset.
    features = np.random.default_rng(2).normal(size=(5, 10))
    mu, sigma = feature_statistics(features)
    distance = frechet_distance(mu, sigma, mu + 1.0, sigma)
    assert np.isfinite(distance)
    assert distance == pytest.approx(10.0, abs=1e-3)  # ||(1,...,1)||^2 in 10 dimensions


def test_frechet_distance_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_feature_statistics_by_hand() -> None:
    features = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    mu, sigma = feature_statistics(features)
    np.testing.assert_allclose(mu, [1.0, 1.0])
    # each coordinate: deviations +-1, sum of squares 4 over N - 1 = 3; coordinates uncorrelated
    np.testing.assert_allclose(sigma, [[4 / 3, 0.0], [0.0, 4 / 3]], atol=1e-12)
    with pytest.raises(InsufficientSamplesError):
        feature_statistics(features[:1])


def test_statistics_round_trip_without_pickle(tmp_path: Path) -> None:
    mu, sigma = np.arange(3.0), np.diag([1.0, 2.0, 3.0])
    path = save_statistics(tmp_path / "stats" / "reference.npz", mu, sigma)
    loaded_mu, loaded_sigma = load_statistics(path)
    np.testing.assert_array_equal(loaded_mu, mu)
    np.testing.assert_array_equal(loaded_sigma, sigma)


# --------------------------------------------------------------------------- TorchScript features and FID


def test_inception_features_resizes_and_feeds_uint8_nchw(feature_network_path: Path) -> None:
    extractor = InceptionFeatures(feature_network_path, batch_size=4)
    # mixed sizes, more images than one batch; solid colours survive any resize unchanged
    images = [_solid_images(REFERENCE_COLORS[:5], 20, 30), _solid_images(REFERENCE_COLORS[5:], 64, 48)[0]]
    features = extractor(images)
    np.testing.assert_allclose(features, REFERENCE_COLORS.astype(np.float64), atol=1e-4)


def test_fid_score_of_shifted_colours_is_the_squared_shift(feature_network_path: Path) -> None:
    extractor = InceptionFeatures(feature_network_path, batch_size=4)
    reference = _solid_images(REFERENCE_COLORS, 24, 24)
    generated = _solid_images(REFERENCE_COLORS + COLOR_SHIFT, 16, 16)
    assert fid_score(generated, reference, extractor, min_samples=2) == pytest.approx(SHIFT_FID, rel=1e-5)
    assert fid_score(reference, reference, extractor, min_samples=2) == pytest.approx(0.0, abs=1e-6)


def test_fid_score_needs_min_samples(feature_network_path: Path) -> None:
    extractor = InceptionFeatures(feature_network_path)
    reference = _solid_images(REFERENCE_COLORS, 8, 8)
    with pytest.raises(InsufficientSamplesError, match="generated frames"):
        fid_score(reference[:3], reference, extractor, min_samples=4)


def test_missing_weights_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="inception_path"):
        InceptionFeatures(tmp_path / "inception-2015-12-05.pt")


def test_maybe_fid_computes_when_configured(feature_network_path: Path) -> None:
    reference = _solid_images(REFERENCE_COLORS, 12, 12)
    generated = _solid_images(REFERENCE_COLORS + COLOR_SHIFT, 12, 12)
    assert maybe_fid(generated, reference, feature_network_path) == pytest.approx(SHIFT_FID, rel=1e-5)


@pytest.mark.parametrize("inception_path", [None, ""])
def test_maybe_fid_skips_without_weights(inception_path: str | None, caplog: pytest.LogCaptureFixture) -> None:
    images = _solid_images(REFERENCE_COLORS, 8, 8)
    with caplog.at_level(logging.INFO, logger="motiontune.metrics.fid"):
        assert maybe_fid(images, images, inception_path) is None
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["FID skipped: no Inception weights configured (evaluate.fid.inception_path)"]
    assert messages[0] == FID_SKIPPED_NO_WEIGHTS


def test_maybe_fid_skips_without_reference(feature_network_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images = _solid_images(REFERENCE_COLORS, 8, 8)
    with caplog.at_level(logging.INFO, logger="motiontune.metrics.fid"):
        assert maybe_fid(images, None, feature_network_path) is None
    assert [record.getMessage() for record in caplog.records] == [FID_SKIPPED_NO_REFERENCE]


def test_load_reference_images_reads_images_in_natural_order(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "reference" / "clip_a"
    folder.mkdir(parents=True)
    for index in (10, 2, 1):  # written out of order; natural order is 1, 2, 10
        Image.fromarray(np.full((6, 8, 3), index, dtype=np.uint8)).save(folder / f"frame_{index}.png")
    (folder / "notes.txt").write_text("not an image")
    images = load_reference_images(tmp_path / "reference")
    assert [int(image[0, 0, 0]) for image in images] == [1, 2, 10]
    assert all(image.shape == (6, 8, 3) and image.dtype == np.uint8 for image in images)
    assert len(load_reference_images(tmp_path / "reference", max_images=2)) == 2
    with pytest.raises(FileNotFoundError, match="reference_dir"):
        load_reference_images(tmp_path / "missing")
