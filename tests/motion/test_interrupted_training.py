"""Killing a training process and rerunning the same command resumes it; the result is that of an unbroken run.

The training runs in real subprocesses through the train node (what ``kedro run --pipelines=train`` calls),
and the kill is a SIGKILL: no handler, no cleanup, exactly what an OOM killer or a pre-empted machine does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from motiontune.methods.artifact import load_motion_artifact
from motiontune.training.loop import CHECKPOINT_FILE

STEPS, CHECKPOINT_EVERY = 12, 2

# The child: the train node on cached features, then the artifact saved as the pipeline's dataset does.
CHILD = """
import json, sys
from pathlib import Path
import pandas as pd, torch
from safetensors.torch import load_file
from motiontune.methods.artifact import save_motion_artifact
from motiontune.pipelines.train.nodes import train_motions

torch.set_num_threads(1)
features_path, metadata_path, backbone, train, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
features = load_file(features_path)
artifacts, _ = train_motions({"clip": lambda: features}, pd.read_json(metadata_path), backbone, train)
save_motion_artifact(Path(out), artifacts["clip"])
"""


@pytest.fixture(scope="module")
def cached_reference(tiny_backbone, tmp_path_factory):
    from motiontune.sampling.latents import encode_frames, encode_prompts

    folder = tmp_path_factory.mktemp("reference")
    frames = (torch.rand(8, 64, 64, 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8).numpy()
    save_file(
        {"latents": encode_frames(tiny_backbone, frames), "prompt_embeds": encode_prompts(tiny_backbone, ["a ball rolling"])},
        str(folder / "features.safetensors"),
    )
    row = {"name": "clip", "num_frames": 8, "height": 64, "width": 64, "source_path": "clip.mp4", "source_sha256": "0" * 64, "train_prompt": "a ball rolling"}
    pd.DataFrame([row]).to_json(folder / "metadata.json")
    return folder


def command(project_root: Path, reference: Path, run_dir: Path, method: str, options: dict) -> list[str]:
    backbone = {"pretrained_model": str(project_root / "data/06_models/backbones/tiny-t2v"), "device": "cpu", "dtype": "float32"}
    train = {
        "method": method, method: options, "steps": STEPS, "seed": 0, "learning_rate": 1e-2,
        "checkpoint_every": CHECKPOINT_EVERY, "progress_bar": False, "checkpoint_root": str(run_dir),
    }
    return [
        sys.executable, "-c", CHILD, str(reference / "features.safetensors"), str(reference / "metadata.json"),
        json.dumps(backbone), json.dumps(train), str(run_dir / "motion"),
    ]


def checkpoint_step(path: Path) -> int:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return int((handle.metadata() or {}).get("step", 0))
    except Exception:  # noqa: BLE001 - absent (an atomic rename means never half-written)
        return 0


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_and_matches_an_unbroken_run(project_root, cached_reference, tmp_path):
    # The loop, its checkpoints and their resume are shared by every method: one method proves it.
    method, options = "motion_embeddings", {"blocks": "deep"}
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.update({"OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'unused.db'}"})
    killed_dir, unbroken_dir = tmp_path / "killed", tmp_path / "unbroken"
    checkpoint = killed_dir / "clip" / "checkpoints" / CHECKPOINT_FILE

    child = subprocess.Popen(command(project_root, cached_reference, killed_dir, method, options), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while checkpoint_step(checkpoint) < 2 * CHECKPOINT_EVERY and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = checkpoint_step(checkpoint)
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    assert CHECKPOINT_EVERY <= killed_at < STEPS
    assert not (killed_dir / "motion").exists()
    assert not [p for p in checkpoint.parent.iterdir() if p.name != CHECKPOINT_FILE], "a temporary file was left"

    rerun = subprocess.run(command(project_root, cached_reference, killed_dir, method, options), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed = load_motion_artifact(killed_dir / "motion")
    assert resumed.manifest["train"]["resumed_from_step"] >= killed_at

    unbroken = subprocess.run(command(project_root, cached_reference, unbroken_dir, method, options), env=env, capture_output=True, text=True, timeout=600)
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]
    reference = load_motion_artifact(unbroken_dir / "motion")
    assert reference.manifest["train"]["resumed_from_step"] == 0
    assert resumed.tensors.keys() == reference.tensors.keys()
    assert all(torch.equal(resumed.tensors[key], reference.tensors[key]) for key in reference.tensors)
    assert resumed.manifest["train"]["final_loss"] == reference.manifest["train"]["final_loss"]
    assert load_file(str(checkpoint)).keys() >= {"rng_state", "loss_history"}
