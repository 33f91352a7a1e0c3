"""The training losses against their formulas on small hand-made tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from motiontune.methods.losses import (
    LOSSES,
    appearance_debiased_mse,
    ddpm_loss,
    debiased_temporal_loss,
    draw_anchor_frame,
    frame_residuals,
    get_loss,
    vmc_loss,
)


def video(frames, channels=1):
    """(1, C, F, 1, 1) from a list of per-frame channel vectors."""
    return torch.tensor(frames, dtype=torch.float32).reshape(len(frames), channels).T.reshape(1, channels, len(frames), 1, 1)


def test_registry_names_the_three_losses():
    assert sorted(LOSSES) == ["ddpm", "debiased_temporal", "vmc"]
    with pytest.raises(ValueError, match="loss: 'huber' is not one of"):
        get_loss("huber")
    with pytest.raises(ValueError, match=r"loss 'vmc': unknown options \['gamma'\]"):
        get_loss("vmc", gamma=1)


def test_ddpm_is_the_noise_mse():
    prediction, target = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    assert torch.allclose(ddpm_loss(prediction, target), ((prediction - target) ** 2).mean())


def test_frame_residuals_with_stride():
    frames = video([[0.0], [1.0], [3.0], [6.0]])
    assert frame_residuals(frames).flatten().tolist() == [1.0, 2.0, 3.0]
    assert frame_residuals(frames, stride=2).flatten().tolist() == [3.0, 5.0]
    with pytest.raises(ValueError, match="need more than 4 frames"):
        frame_residuals(frames, stride=4)


def test_vmc_paper_form_is_zero_for_identical_and_two_for_opposite_residuals():
    target = torch.randn(2, 4, 5, 3, 3)
    # Same residuals although the frames differ (a constant offset cancels in frame differences).
    assert vmc_loss(target + 0.7, target).item() == pytest.approx(0.0, abs=1e-6)
    assert vmc_loss(-target, target).item() == pytest.approx(2.0, abs=1e-6)


def test_vmc_paper_form_takes_the_cosine_over_each_frame_residual():
    # Two channels, two frames: target residual (1, 0), predicted residual (1, 1): cos = 1/sqrt(2).
    target = video([[0.0, 0.0], [1.0, 0.0]], channels=2)
    prediction = video([[0.0, 0.0], [1.0, 1.0]], channels=2)
    assert vmc_loss(prediction, target).item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)
    # Three frames: residuals n=0 aligned (cos 1), n=1 orthogonal (cos 0): mean of (0, 1).
    target = video([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], channels=2)
    prediction = video([[0.0, 0.0], [2.0, 0.0], [3.0, 0.0]], channels=2)
    assert vmc_loss(prediction, target).item() == pytest.approx(0.5, abs=1e-6)


def test_vmc_public_code_form_uses_absolute_residuals_and_the_frame_axis():
    # |d_target| = (1, 2), |d_pred| = (2, 1) along frames: cos = 4 / 5.
    target = video([[0.0], [1.0], [3.0]])
    prediction = video([[0.0], [-2.0], [-1.0]])
    assert vmc_loss(prediction, target, form="public_code").item() == pytest.approx(0.2, abs=1e-6)
    # abs() makes opposite residuals identical: the public form cannot tell the direction of motion.
    noise = torch.randn(1, 4, 5, 3, 3)
    assert vmc_loss(-noise, noise, form="public_code").item() == pytest.approx(0.0, abs=1e-6)
    expected = 1 - F.cosine_similarity(frame_residuals(-noise).abs(), frame_residuals(noise).abs(), dim=2).mean()
    assert torch.allclose(vmc_loss(-noise, noise, form="public_code"), expected)


def test_vmc_l2_form_is_the_mse_between_residuals():
    target = video([[0.0], [1.0], [3.0]])
    prediction = video([[0.0], [2.0], [2.0]])
    # residuals: target (1, 2), prediction (2, 0): ((1)^2 + (2)^2) / 2
    assert vmc_loss(prediction, target, form="l2").item() == pytest.approx(2.5)
    assert get_loss("vmc", form="l2")(prediction, target).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="vmc_form: 'cosine' is not one of"):
        vmc_loss(prediction, target, form="cosine")


def test_appearance_debiased_term_matches_its_formula_and_vanishes_on_a_perfect_prediction():
    generator = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(1, 2, 4, 3, 3, generator=generator), torch.randn(1, 2, 4, 3, 3, generator=generator)
    a, b = math.sqrt(2.0), 1.0
    expected = F.mse_loss(a * prediction - b * prediction[:, :, 2:3], a * target - b * target[:, :, 2:3])
    assert torch.allclose(appearance_debiased_mse(prediction, target, anchor=2), expected)
    assert appearance_debiased_mse(target.clone(), target, anchor=1).item() == 0.0
    assert debiased_temporal_loss(target.clone(), target, generator=generator).item() == 0.0


def test_debiased_temporal_loss_is_mse_plus_the_term_with_an_anchor_from_the_generator():
    prediction, target = torch.randn(1, 2, 6, 3, 3), torch.randn(1, 2, 6, 3, 3)
    anchor = draw_anchor_frame(6, torch.Generator().manual_seed(5))
    expected = ddpm_loss(prediction, target) + appearance_debiased_mse(prediction, target, anchor)
    loss = debiased_temporal_loss(prediction, target, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(loss, expected)
    with pytest.raises(ValueError, match="needs the run's generator"):
        debiased_temporal_loss(prediction, target)
