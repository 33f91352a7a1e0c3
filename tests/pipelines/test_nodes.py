"""The Kedro nodes, called as plain functions on the sample data and the tiny backbone."""

import numpy as np
import pytest
import yaml

from motiontune.io.validation import VideoValidationError
from motiontune.io.video import write_video
from motiontune.pipelines.encode.nodes import encode_references
from motiontune.pipelines.evaluate.nodes import evaluate_motions
from motiontune.pipelines.generate.nodes import generate_videos
from motiontune.pipelines.ingest.nodes import ingest_references
from motiontune.pipelines.train.nodes import train_motions

VIDEO = {"num_frames": 8, "height": 64, "width": 64, "fps": 8}
BACKBONE = {"pretrained_model": "data/06_models/backbones/tiny-t2v", "device": "cpu", "dtype": "float32"}


def ingest_params(manifest_dir, entries=None):
    return {
        "manifest_dir": str(manifest_dir), "entries": entries, "frames_fps": 8, "resample_to_fps": True,
        "rules": {"min_fps": 1.0, "max_fps": 240.0, "min_side": 16, "max_side": 8192},
    }


@pytest.fixture(scope="module")
def manifest(project_root):
    return yaml.safe_load((project_root / "data/01_raw/manifest.yml").read_text())


def lazy(values):
    return {key: (lambda value=value: value) for key, value in values.items()}


def test_ingest_resamples_crops_and_simplifies(manifest, project_root):
    clips, metadata = ingest_references(manifest, VIDEO, ingest_params(project_root / "data/01_raw"))
    assert sorted(clips) == ["ball_right", "camera_pan", "orbit_counterclockwise", "zigzag_right"]
    assert all(clip.frames.shape == (8, 64, 64, 3) for clip in clips.values())
    row = metadata.set_index("name").loc["ball_right"]
    # Both training prompts: the caption (Motion Embeddings, MotionDirector, MotionMatcher) and its simplified form (VMC).
    assert row["train_prompt"] == "a red circle moving right over a gray floor"
    assert row["simplified_train_prompt"] == "a circle moving right"
    assert row["source_frames"] == 24 and row["source_width"] == 96 and row["source_height"] == 80
    assert len(row["source_sha256"]) == 64


def test_ingest_stops_on_bad_input_naming_file_and_rule(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video")
    frames = np.zeros((12, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "good.mp4", frames, 8)
    manifest = {"videos": [
        {"name": "text", "path": "notes.mp4", "prompt": "a dog", "target_prompts": ["a cat"]},
        {"name": "quiet", "path": "good.mp4", "prompt": "", "target_prompts": ["a cat"]},
    ]}
    with pytest.raises(VideoValidationError) as error:
        ingest_references(manifest, VIDEO, ingest_params(tmp_path))
    message = str(error.value)
    assert "notes.mp4: unreadable video" in message
    assert "good.mp4: prompt is missing or empty" in message
    assert message.splitlines()[0] == "2 problems with the reference videos:"


def test_nodes_chain_on_the_tiny_backbone(manifest, project_root, tmp_path, tiny_clip_dir):
    clips, metadata = ingest_references(manifest, VIDEO, ingest_params(project_root / "data/01_raw", ["ball_right"]))
    features = encode_references(lazy(clips), metadata, BACKBONE, {"inversion_steps": 4, "progress_bar": False})
    assert tuple(features["ball_right"]["inverted_latents"].shape) == (1, 4, 8, 16, 16)
    train = {
        "method": "motion_embeddings", "steps": 2, "seed": 0, "learning_rate": 0.05, "checkpoint_every": 0,
        "progress_bar": False, "checkpoint_root": str(tmp_path), "motion_embeddings": {"blocks": "deep"},
    }
    artifacts, summary = train_motions(lazy(features), metadata, BACKBONE, train)
    assert artifacts["ball_right"].manifest["method"] == "motion_embeddings"
    assert len(summary["ball_right"]["loss_history"]) == 2
    generate = {"seed": 0, "steps": 2, "guidance_scale": 10.0, "noise_init": "lowfreq", "debias": "normalize", "progress_bar": False}
    videos = generate_videos(lazy(artifacts), lazy(features), metadata, BACKBONE, VIDEO, generate)
    assert sorted(videos) == [
        "ball_right/00_a-blue-square",
        "ball_right/01_a-yellow-star",
    ]
    assert all(v.frames.shape == (8, 64, 64, 3) for v in videos.values())
    evaluate = {
        "tracker": "opencv_lk", "tracker_options": {"grid_size": 8}, "static_threshold": 0.5,
        "clip": {"model": str(tiny_clip_dir), "temporal_pairs": "all"}, "fid": {"inception_path": None},
        "previews": {"frames_per_video": 3},
    }
    reports, previews, sheets, table, markdown = evaluate_motions(lazy(clips), lazy(videos), metadata, evaluate)
    report = reports["ball_right"]
    assert len(report["videos"]) == 2 and report["videos"][0]["num_reference_tracks"] > 0
    assert np.isfinite(report["mean"]["motion_fidelity"])
    # the locally saved CLIP is used through the same code as openai/clip-vit-base-patch32
    assert -1.0 <= report["videos"][0]["clip_text_similarity"] <= 1.0
    assert "clip_text_similarity" in report["mean"] and "clip" in report["models"]
    assert "fid" in report["not_computed"] and "fid" not in report["mean"]
    # reference | 2 generated videos side by side, 64 px panels plus separators and a label strip
    assert previews["ball_right"].frames.shape[0] == 8 and previews["ball_right"].frames.shape[2] >= 3 * 64
    assert sheets["ball_right"].shape[0] >= 3 * 64  # 3 rows: reference + 2 generated
    assert list(table["kind"]).count("mean") == 1 and "| motion |" in markdown
    assert "object_trajectory_similarity" not in report["mean"]  # off unless evaluate.object_track
    world = yaml.safe_load((project_root / "conf/base/parameters_world.yml").read_text())["world"]
    tracked = {**evaluate, "object_track": True, "previews": {"frames_per_video": 3, "cell_height": 96}}
    reports, _, sheets, table, _ = evaluate_motions(lazy(clips), lazy(videos), metadata, tracked, world)
    assert "object_trajectory_similarity" in table.columns and "object_found" in reports["ball_right"]["mean"]
    assert sheets["ball_right"].shape[0] >= 3 * 96 and sheets["ball_right"].shape[1] >= 3 * 96  # enlarged cells


def test_ingest_can_skip_bad_entries_and_keep_the_rest(tmp_path, caplog):
    (tmp_path / "notes.mp4").write_text("this is not a video")
    write_video(tmp_path / "good.mp4", np.full((12, 32, 32, 3), 90, dtype=np.uint8), 8)
    manifest = {"videos": [
        {"name": "text", "path": "notes.mp4", "prompt": "a dog", "target_prompts": ["a cat"]},
        {"name": "fine", "path": "good.mp4", "prompt": "a grey wall", "target_prompts": ["a cat"]},
    ]}
    params = {**ingest_params(tmp_path), "on_error": "skip"}
    clips, metadata = ingest_references(manifest, VIDEO, params)
    assert list(clips) == ["fine"] and list(metadata["name"]) == ["fine"]
    assert "Skipping manifest entry 'text'" in caplog.text and "notes.mp4: unreadable video" in caplog.text
    with pytest.raises(ValueError, match="ingest.on_error: 'ignore' is not one of"):
        ingest_references(manifest, VIDEO, {**params, "on_error": "ignore"})
