"""Write the small procedural sample data set (no downloads, deterministic).

Three reference clips at 12 fps, 24 frames, 96x80 (W x H) -- deliberately not
the 64x64 training size, so ingest has to resize and center-crop -- on textured
backgrounds so optical-flow trackers find features:

- ``ball_right.mp4``: a red disc moving left to right over a grey noise floor.
- ``square_orbit.gif``: a green square circling the centre over a blue gradient with dots.
- ``camera_pan/frame_000.png ...``: a scene of coloured rectangles sliding right to
  left, i.e. the camera pans right (a folder has no fps: the manifest gives it).

plus ``manifest.yml`` listing them. The prompts use the motion world's words ("a red circle moving right",
targets such as "a blue square"), the only ones the embedded world backbone knows. Usage::

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

DEFAULT_OUT_DIR = Path("data/01_raw")
SEED = 20261121
FPS = 12
NUM_FRAMES = 24
HEIGHT, WIDTH = 80, 96
PAN_PIXELS_PER_FRAME = 3


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


def make_square_orbit(rng: np.random.Generator) -> np.ndarray:
    """Green square circling the centre over a blue gradient with dots; uint8 (F, H, W, 3)."""
    rows = np.linspace(0.0, 1.0, HEIGHT)[:, None]
    cols = np.linspace(0.0, 1.0, WIDTH)[None, :]
    background = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    background[..., 0] = (20 + 40 * cols).astype(np.uint8).repeat(HEIGHT, 0)
    background[..., 1] = (40 + 60 * rows).astype(np.uint8).repeat(WIDTH, 1)
    background[..., 2] = (120 + 100 * rows * (1 - cols) + 30 * cols).astype(np.uint8)
    for _ in range(60):
        y, x = int(rng.integers(0, HEIGHT)), int(rng.integers(0, WIDTH))
        background[max(0, y - 1) : y + 1, max(0, x - 1) : x + 1] = rng.integers(180, 256, 3)
    half_side, orbit_radius = 7, 22
    angles = np.linspace(0.0, 2 * np.pi, NUM_FRAMES, endpoint=False)
    frames = []
    for angle in angles:
        frame = background.copy()
        cx = int(round(WIDTH / 2 + orbit_radius * np.cos(angle)))
        cy = int(round(HEIGHT / 2 + orbit_radius * np.sin(angle)))
        frame[cy - half_side : cy + half_side, cx - half_side : cx + half_side] = (40, 200, 60)
        frames.append(frame)
    return np.stack(frames)


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
            "name": "square_orbit",
            "path": "square_orbit.gif",
            "prompt": "a green square moving in a clockwise circle",
            "train_prompt": None,
            "target_prompts": [
                "a magenta triangle",
                "a cyan circle",
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
    ball_rng, orbit_rng, pan_rng = (np.random.default_rng([SEED, i]) for i in range(3))

    written = [
        write_video(out_dir / "ball_right.mp4", make_ball_right(ball_rng), FPS, crf=23),
        write_gif(out_dir / "square_orbit.gif", make_square_orbit(orbit_rng), FPS),
    ]
    pan_dir = out_dir / "camera_pan"
    if pan_dir.exists():
        shutil.rmtree(pan_dir)  # stale frames from a longer earlier run would be read too
    pan_dir.mkdir()
    for index, frame in enumerate(make_camera_pan(pan_rng)):
        Image.fromarray(frame).save(pan_dir / f"frame_{index:03d}.png", optimize=True)
    written.append(pan_dir)

    manifest_path = out_dir / "manifest.yml"
    manifest_path.write_text(MANIFEST_HEADER + yaml.safe_dump(MANIFEST, sort_keys=False, width=100))
    written.append(manifest_path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT_DIR)
    for path in main(parser.parse_args().out_dir):
        print(path)
