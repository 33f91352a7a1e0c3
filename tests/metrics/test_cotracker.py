"""CoTracker3 as the motion fidelity tracker (issue 15, item 8).

``../shared/third_party/co-tracker`` (beside the repository; in CI a copy of shared/ sits beside the clone) is the
real CoTracker3 model code without weights. The tests build the real architecture from it with random weights,
save checkpoints of it, and load them through the configuration a user writes (``evaluate.tracker: cotracker``).
CoTracker resizes every clip to 384x512, so a call costs seconds whatever the clip: clips here have 2-4 frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from motiontune.metrics.configured import evaluate_problems, motion_tracker
from motiontune.metrics.trackers import CoTrackerTracker, build_tracker, visible_tracks

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLONE = PROJECT_ROOT.parent / "shared" / "third_party" / "co-tracker"
EVALUATE = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_evaluate.yml").read_text())["evaluate"]
needs_clone = pytest.mark.skipif(not (CLONE / "hubconf.py").is_file(), reason=f"no CoTracker clone at {CLONE}")

GRID = 3
# The visibility logit of CoTracker3's update transformer (EfficientUpdateFormer.vis_conf_head: visibility,
# confidence); the model adds it at each of its 6 refinement steps and keeps sigmoid(sum) > 0.9 as visible.
VISIBILITY_BIAS = "updateformer.vis_conf_head.bias"


def cotracker_settings(checkpoint: Path, **options: object) -> dict:
    """The evaluate section a user writes for CoTracker (the other settings as configured)."""
    return {**EVALUATE, "tracker": "cotracker",
            "tracker_options": {"repo_dir": str(CLONE), "checkpoint": str(checkpoint), "grid_size": GRID, **options}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """State dicts of the random-weight model: as built, and with the visibility bias at +5 (always visible)."""
    import torch

    folder = tmp_path_factory.mktemp("cotracker")
    with torch.random.fork_rng(devices=[]):
        model = torch.hub.load(str(CLONE), "cotracker3_offline", source="local", pretrained=False).model
    random_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    visible_state = dict(random_state)
    visible_state[VISIBILITY_BIAS] = random_state[VISIBILITY_BIAS].clone()
    visible_state[VISIBILITY_BIAS][0] = 5.0
    saved = {}
    for name, state in (("random", random_state), ("visible", visible_state)):
        torch.save(state, folder / f"{name}.pth")
        saved[name] = (folder / f"{name}.pth", state)
    return saved


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """4 frames of 32x32 blurred noise panning right 2 px per frame."""
    import cv2

    rng = np.random.default_rng(0)
    wide = cv2.GaussianBlur(rng.uniform(0, 255, (32, 48, 3)).astype(np.float32), (0, 0), 1.5)
    return np.stack([wide[:, 8 - 2 * i : 40 - 2 * i] for i in range(4)]).clip(0, 255).astype(np.uint8)


@needs_clone
def test_a_users_checkpoint_is_loaded(checkpoints: dict[str, tuple[Path, dict]]) -> None:
    path, state = checkpoints["visible"]
    settings = cotracker_settings(path)
    assert evaluate_problems(settings) == []
    tracker, description = motion_tracker(settings)
    assert isinstance(tracker, CoTrackerTracker) and description.startswith("cotracker")
    loaded = tracker.predictor.model.state_dict()
    assert sorted(loaded) == sorted(state)
    for name, tensor in state.items():
        assert loaded[name].equal(tensor), name
    assert not loaded[VISIBILITY_BIAS].equal(checkpoints["random"][1][VISIBILITY_BIAS])


def seed_grid(height: int, width: int) -> np.ndarray:
    """CoTracker's GRIDxGRID seeds in pixels, by hand: on its 384x512 resolution, 512/64 = 8 px from the border,
    scaled back by (side - 1) / (model side - 1); row-major (x, y)."""
    xs = np.linspace(8, 512 - 8, GRID) * (width - 1) / (512 - 1)
    ys = np.linspace(8, 384 - 8, GRID) * (height - 1) / (384 - 1)
    grid_x, grid_y = np.meshgrid(xs, ys)
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1)


@needs_clone
def test_tracks_and_visibility(checkpoints: dict[str, tuple[Path, dict]], clip: np.ndarray) -> None:
    # Random weights: a visibility logit near 0, sigmoid ~0.5 < 0.9: every point lost after its query frame.
    tracker, _ = motion_tracker(cotracker_settings(checkpoints["random"][0]))
    calls = []
    predict = tracker.predict
    tracker.predict = lambda frames, mask=None: calls.append(predict(frames, mask)) or calls[-1]
    dropped = tracker.track(clip)
    positions, visible, seed_ids = calls[0]
    assert positions.shape == (GRID * GRID, 4, 2) and visible.shape == (GRID * GRID, 4)
    assert seed_ids.tolist() == list(range(GRID * GRID))
    np.testing.assert_allclose(positions[:, 0], seed_grid(32, 32), atol=1e-4)
    assert visible[:, 0].all() and not visible[:, 1:].any()
    assert dropped.num_tracks == 0 and dropped.frame_size == (32, 32)
    kept_all = visible_tracks(positions, visible, seed_ids, (32, 32), drop_invisible=False)
    assert kept_all.num_tracks == GRID * GRID and kept_all.visible.tolist() == visible.tolist()

    # The checkpoint whose visibility bias is +5: every point visible, every track kept, on its seed.
    tracker, _ = motion_tracker(cotracker_settings(checkpoints["visible"][0]))
    kept = tracker.track(clip[:2])
    assert kept.positions.shape == (GRID * GRID, 2, 2) and kept.positions.dtype == np.float32
    assert kept.visible.all() and kept.ids.tolist() == list(range(GRID * GRID))
    np.testing.assert_allclose(kept.positions[:, 0], seed_grid(32, 32), atol=1e-4)


def test_lost_points_are_dropped() -> None:
    positions = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    visible = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [1, 0, 0, 0]], dtype=bool)
    tracks = visible_tracks(positions, visible, np.array([4, 7, 9]), (32, 48), drop_invisible=True)
    assert tracks.ids.tolist() == [4] and tracks.positions.tolist() == positions[:1].tolist()
    assert tracks.frame_size == (32, 48)
    everything = visible_tracks(positions, visible, np.array([4, 7, 9]), (32, 48), drop_invisible=False)
    assert everything.ids.tolist() == [4, 7, 9] and everything.visible.tolist() == visible.tolist()


@needs_clone
def test_a_mask_keeps_cotrackers_seeds_inside(checkpoints: dict[str, tuple[Path, dict]], clip: np.ndarray) -> None:
    tracker, _ = motion_tracker(cotracker_settings(checkpoints["visible"][0]))
    # The seeds sit at x, y in {0.5, 15.5, 30.5} px: a mask over x, y < 20 holds the top-left 2x2, ids 0 1 3 4.
    mask = np.zeros((32, 32), dtype=bool)
    mask[:20, :20] = True
    tracks = tracker.track(clip[:2], mask=mask)
    assert tracks.ids.tolist() == [0, 1, 3, 4]
    np.testing.assert_allclose(tracks.positions[:, 0], seed_grid(32, 32)[[0, 1, 3, 4]], atol=1e-4)


def test_missing_clone_or_checkpoint_is_a_parameter_error(tmp_path: Path) -> None:
    from motiontune.parameters import ParameterError, check_parameters

    video = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters.yml").read_text())["video"]
    clone, checkpoint = tmp_path / "co-tracker", tmp_path / "scaled_offline.pth"
    settings = {**EVALUATE, "tracker": "cotracker",
                "tracker_options": {"repo_dir": str(clone), "checkpoint": str(checkpoint), "grid_size": 55}}
    with pytest.raises(ParameterError) as error:
        check_parameters({"video": video, "evaluate": settings})
    lines = [line for line in str(error.value).splitlines() if "tracker_options" in line]
    assert lines == [
        f"  evaluate.tracker_options.repo_dir: {clone} is not a clone of facebookresearch/co-tracker (no hubconf.py there)",
        f"  evaluate.tracker_options.checkpoint: {checkpoint} is not a file (CoTracker3's scaled_offline.pth)",
    ]
    # Options of the other tracker are refused by name, and building it fails the same way before any loading.
    assert evaluate_problems({**settings, "tracker_options": {**settings["tracker_options"], "win_size": 7}})[0] == (
        "evaluate.tracker_options.win_size: unknown key (did you mean 'grid_size'?)")
    with pytest.raises(ValueError, match=f"checkpoint: {checkpoint} is not a file"):
        build_tracker("cotracker", repo_dir=str(CLONE), checkpoint=str(checkpoint))
