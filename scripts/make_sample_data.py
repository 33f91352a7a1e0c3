"""Write the small procedural sample data set (no downloads, deterministic).

Two clips from the motion world's generator, of the families its backbone never trained on
(``world.held_out_families``), so the default run shows a motion the backbone did not know:

- ``zigzag_right.mp4``: a red square zigzagging right on a plain background,
- ``orbit_counterclockwise.gif``: a green triangle circling counterclockwise,

rendered at 64x64 and 16 frames at 16 fps (ingest resamples them to ``video.*``: 8 frames at 8 fps, 32x32);
and two real-world-like clips at 12 fps, 24 frames, 96x80 (W x H) -- deliberately not square, so ingest has
to resize and center-crop -- on textured backgrounds so optical-flow trackers find features, for users to copy
the entry of:

- ``ball_right.mp4``: a red disc moving left to right over a grey noise floor.
- ``camera_pan/frame_000.png ...``: a scene of coloured rectangles sliding right to
  left, i.e. the camera pans right (a folder has no fps: the manifest gives it).

plus ``manifest.yml`` listing them. The prompts use the motion world's words ("a red circle moving right",
targets such as "a blue square"), the only ones the embedded world backbone knows; the world clips' prompts are
the generator's captions. Usage::

    python scripts/make_sample_data.py [OUT_DIR]      # default: data/01_raw
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from motiontune.io.video import write_gif, write_video
from motiontune.world.generator import render_sample
from motiontune.world.spec import WorldSpec

DEFAULT_OUT_DIR = Path("data/01_raw")
SEED = 20261121
FPS = 12
NUM_FRAMES = 24
HEIGHT, WIDTH = 80, 96
PAN_PIXELS_PER_FRAME = 3
# The world clips: twice the backbone's 32x32 and 8 frames, so ingest's resampling and resizing are exercised.
WORLD_PARAMETERS = Path(__file__).resolve().parents[1] / "conf/base/parameters_world.yml"
WORLD_SIDE, WORLD_FRAMES, WORLD_FPS = 64, 16, 16
WORLD_SEED = 3
WORLD_CLIPS = {  # name: (family, its parameters, colour, shape); plain backgrounds: the motion is what one sees
    "zigzag_right": ("zigzag", {"direction": "right"}, "red", "square"),
    "orbit_counterclockwise": ("circle_counterclockwise", {}, "green", "triangle"),
}


def make_ball_right(rng: np.random.Generator) -> np.ndarray:
    """Red disc crossing a grey noise floor left to right; uint8 (F, H, W, 3)."""
    noise = rng.normal(0.0, 1.0, (HEIGHT, WIDTH)).astype(np.float32)
    # Blur the noise into blobs a few pixels wide: trackable texture that still compresses well.
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=1.5)
    floor = np.clip(128 + 40 * noise / noise.std(), 0, 255).astype(np.uint8)
    floor = np.repeat(floor[..., None], 3, axis=2)
    radius = 10
    xs = np.linspace(radius + 4, WIDTH - radius - 5, NUM_FRAMES)
    frames = []
    for x in xs:
        frame = floor.copy()
        cv2.circle(frame, (int(round(x)), HEIGHT // 2 + 8), radius, (220, 30, 30), thickness=-1, lineType=cv2.LINE_AA)
        frames.append(frame)
    return np.stack(frames)


def make_world_clip(name: str) -> tuple[np.ndarray, str]:
    """One of ``WORLD_CLIPS`` from the world generator: uint8 (F, H, W, 3) frames and the generator's caption."""
    family, params, colour, shape = WORLD_CLIPS[name]
    world = yaml.safe_load(WORLD_PARAMETERS.read_text(encoding="utf-8"))["world"]
    spec = WorldSpec.from_params({**world, "height": WORLD_SIDE, "width": WORLD_SIDE, "num_frames": WORLD_FRAMES})
    if family not in spec.held_out_families:
        raise ValueError(f"{name}: {family} is not a held-out family of the world ({list(spec.held_out_families)})")
    sample = render_sample(spec, family, params=params or None, colour=colour, shape=shape, background="plain",
                           seed=WORLD_SEED)
    return sample.frames, sample.caption


def make_camera_pan(rng: np.random.Generator) -> np.ndarray:
    """A wide canvas of coloured rectangles seen through a window moving right; uint8 (F, H, W, 3)."""
    canvas_width = WIDTH + PAN_PIXELS_PER_FRAME * (NUM_FRAMES - 1)
    canvas = np.full((HEIGHT, canvas_width, 3), 235, np.uint8)
    for _ in range(70):
        x0, y0 = int(rng.integers(-8, canvas_width)), int(rng.integers(-8, HEIGHT))
        w, h = int(rng.integers(6, 22)), int(rng.integers(6, 22))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(canvas, (x0, y0), (x0 + w, y0 + h), colour, thickness=-1)
    # The window moves right each frame, so the scene slides left: a camera panning right.
    return np.stack(
        [canvas[:, t * PAN_PIXELS_PER_FRAME : t * PAN_PIXELS_PER_FRAME + WIDTH] for t in range(NUM_FRAMES)]
    )


MANIFEST = {
    "videos": [
        {
            "name": "zigzag_right",
            "path": "zigzag_right.mp4",
            "prompt": None,  # the generator's caption, filled in by main()
            "train_prompt": None,
            "target_prompts": [
                "a blue circle",
                "a yellow star",
            ],
            "fps": None,
        },
        {
            "name": "orbit_counterclockwise",
            "path": "orbit_counterclockwise.gif",
            "prompt": None,
            "train_prompt": None,
            "target_prompts": [
                "a magenta square",
                "a cyan circle",
            ],
            "fps": None,
        },
        {
            "name": "ball_right",
            "path": "ball_right.mp4",
            "prompt": "a red circle moving right over a gray floor",
            "train_prompt": None,
            "target_prompts": [
                "a blue square",
                "a yellow star",
            ],
            "fps": None,
        },
        {
            "name": "camera_pan",
            "path": "camera_pan",
            "prompt": "camera panning to the right across a wall of colourful rectangles",
            "train_prompt": None,
            "target_prompts": [
                "a red star",
                "a blue circle",
            ],
            "fps": FPS,
        },
    ]
}

MANIFEST_HEADER = """\
# Reference videos for motiontune (written by scripts/make_sample_data.py).
# path: relative to this folder (or absolute); a video file or a folder of frames.
# train_prompt: null -> derived from prompt by motiontune.io.prompts.simplify_prompt.
# fps: only for folders of frames (a video file carries its own rate).
"""


def main(out_dir: Path = DEFAULT_OUT_DIR) -> list[Path]:
    """Write the sample clips and manifest into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # One generator per clip: changing one clip does not reshuffle the others.
    ball_rng, _, pan_rng = (np.random.default_rng([SEED, i]) for i in range(3))
    for stale in ("square_orbit.gif",):  # clips earlier versions wrote
        (out_dir / stale).unlink(missing_ok=True)

    manifest = {"videos": [dict(entry) for entry in MANIFEST["videos"]]}
    prompts = {}
    written = []
    for name in WORLD_CLIPS:
        frames, prompts[name] = make_world_clip(name)
        path = out_dir / next(e["path"] for e in manifest["videos"] if e["name"] == name)
        if path.suffix == ".gif":
            written.append(write_gif(path, frames, WORLD_FPS))
        else:
            written.append(write_video(path, frames, WORLD_FPS, crf=12))
    for entry in manifest["videos"]:
        entry["prompt"] = entry["prompt"] or prompts[entry["name"]]
    written.append(write_video(out_dir / "ball_right.mp4", make_ball_right(ball_rng), FPS, crf=23))
    pan_dir = out_dir / "camera_pan"
    if pan_dir.exists():
        shutil.rmtree(pan_dir)  # stale frames from a longer earlier run would be read too
    pan_dir.mkdir()
    for index, frame in enumerate(make_camera_pan(pan_rng)):
        Image.fromarray(frame).save(pan_dir / f"frame_{index:03d}.png", optimize=True)
    written.append(pan_dir)

    manifest_path = out_dir / "manifest.yml"
    manifest_path.write_text(MANIFEST_HEADER + yaml.safe_dump(manifest, sort_keys=False, width=100))
    written.append(manifest_path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT_DIR)
    for path in main(parser.parse_args().out_dir):
        print(path)
