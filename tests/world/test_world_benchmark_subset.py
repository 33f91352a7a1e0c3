"""CI-sized subset of the world benchmark on the committed world backbone: each method must beat the control.

One case (the held-out zigzag family, never seen in backbone training), one seed, two target prompts,
CPU-sized training (100 steps) and sampling (25 steps). Measured on this subset (issue 6 closing note):

| | Backbone | Motion Embeddings | VMC | MotionMatcher | MotionDirector |
|---|---:|---:|---:|---:|---:|
| trajectory similarity | -0.009 | 0.540 | 0.353 | 0.112 | 0.156 |
| direction agreement | 0.0 | 1.0 | 0.5 | 1.0 | 1.0 |
| target colour | 1.0 | 1.0 | 1.0 | 1.0 | 1.0 |

(committed backbone after its refine stage; 156 s on 2 CPU cores). Every method must keep at least half of its
measured lead in direction agreement; Motion Embeddings and VMC must keep a trajectory lead of 0.25 and 0.15
(about half of theirs). MotionMatcher's and MotionDirector's trajectory leads (0.12, 0.17) are too close to what
one seed moves to guard (see the issue 6 notes); one target colour of the two may be missed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from motiontune.pipelines.world_benchmark.nodes import benchmark_on_world

CASE = {"family": "zigzag", "params": {"direction": "right"}}
TRAIN_STEPS = 100
SAMPLING_STEPS = 25
# Required leads over the plain backbone (see the docstring for the measured values).
MIN_DIRECTION_LEAD = {"Motion Embeddings": 0.5, "VMC": 0.25, "MotionMatcher": 0.5, "MotionDirector": 0.5}
MIN_TRAJECTORY_LEAD = {"Motion Embeddings": 0.25, "VMC": 0.15}
MIN_COLOUR_ACCURACY = 0.5


@pytest.mark.slow
def test_every_method_transfers_more_motion_than_the_plain_backbone(project_root: Path, tmp_path: Path):
    """The pipeline's own node on the project's parameters, narrowed to one case, one seed and one control."""
    conf = project_root / "conf" / "base"

    def section(name: str, key: str) -> dict:
        return yaml.safe_load((conf / f"parameters_{name}.yml").read_text())[key]

    settings = section("world_benchmark", "world_benchmark")
    narrowed = {
        **settings, "cases": [CASE], "seeds": [0],
        "controls": [{"label": "Backbone", "generate": {"noise_init": "random"}}],
        "train": {**settings["train"], "steps": TRAIN_STEPS},
        "generate": {**settings["generate"], "steps": SAMPLING_STEPS},
        "work_dir": str(tmp_path / "runs"),
    }
    evaluate = section("evaluate", "evaluate")
    evaluate["clip"]["model"] = str(project_root / evaluate["clip"]["model"])
    backbone = {**section("backbone", "backbone"), "device": "cpu",
                "pretrained_model": str(project_root / section("backbone", "backbone")["pretrained_model"])}
    results, summary, markdown, plots, videos = benchmark_on_world(
        backbone, section("world", "world"), section("train", "train"), section("generate", "generate"), evaluate,
        narrowed, fps=8.0, ray=section("executor", "ray"),
    )
    assert "clip_text_similarity" in markdown and results["clip_text_similarity"].notna().all()
    summary = summary.set_index("Method")
    control = summary.loc["Backbone"]
    for method in [item["label"] for item in settings["methods"]]:
        row = summary.loc[method]
        assert row["direction_correct"] - control["direction_correct"] >= MIN_DIRECTION_LEAD[method], (method, row["direction_correct"], control["direction_correct"])
        assert row["colour_correct"] >= MIN_COLOUR_ACCURACY, (method, row["colour_correct"])
        if method in MIN_TRAJECTORY_LEAD:
            lead = row["trajectory_similarity"] - control["trajectory_similarity"]
            assert lead >= MIN_TRAJECTORY_LEAD[method], f"{method}: trajectory similarity {row['trajectory_similarity']:.3f} vs control {control['trajectory_similarity']:.3f}"
