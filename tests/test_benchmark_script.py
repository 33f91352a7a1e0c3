"""benchmarks/train_step.py runs end to end and writes the JSON and markdown it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/train_step.py")


def test_zeroscope_is_skipped_on_cpu_with_a_note(script, tmp_path):
    report = script.main(["--configs", "zeroscope", "--device", "cpu", "--out", str(tmp_path)])
    assert "only with --device cuda" in report["configs"]["zeroscope"]["skipped"]
    written = json.loads((tmp_path / "cpu.json").read_text(encoding="utf-8"))
    assert written["configs"]["zeroscope"]["skipped"] == report["configs"]["zeroscope"]["skipped"]
    assert "Skipped: zeroscope runs only with --device cuda" in (tmp_path / "cpu.md").read_text(encoding="utf-8")


def test_bad_arguments_are_refused(script):
    with pytest.raises(SystemExit):
        script.parse_args(["--configs", "huge"])
    with pytest.raises(SystemExit):
        script.parse_args(["--steps", "0"])


@pytest.mark.slow
def test_tiny_mode_runs_end_to_end_and_writes_valid_json(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--configs", "tiny", "--steps", "2", "--gen-steps", "4", "--methods", "motion_embeddings", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "cpu.json").read_text(encoding="utf-8"))
    meta = report["meta"]
    for key in ("device", "device_name", "torch", "diffusers", "date", "load_average_start", "memory_measure", "steps"):
        assert key in meta
    assert meta["device"] == "cpu" and meta["steps"] == 2
    tiny = report["configs"]["tiny"]
    assert tiny["unet"]["attention_processors"] == ["AttnProcessor2_0"]
    record = tiny["methods"]["motion_embeddings"]
    assert set(record["train"]) == {"baseline", "gradient_checkpointing", "bf16"}
    for variant, row in record["train"].items():
        assert row["seconds_per_step"] > 0 and row["cpu_seconds_per_step"] > 0 and row["peak_memory_bytes"] > 0, variant
        assert row["timed_steps"] == 2 and [len(r) for r in row["step_seconds"]] == [2, 2]  # 2 rounds: 1 warm-up + 1 timed
    assert set(record["ratios"]) == {"gradient_checkpointing", "bf16"}
    assert record["ratios"]["gradient_checkpointing"]["peak_memory"] < 1.0
    generation = record["generation"]
    assert generation["plain_seconds_per_step"] > 0 and generation["applied_seconds_per_step"] > 0
    assert generation["ratio"] == pytest.approx(generation["applied_seconds_per_step"] / generation["plain_seconds_per_step"])
    assert generation["cpu_ratio"] == pytest.approx(generation["applied_cpu_seconds_per_step"] / generation["plain_cpu_seconds_per_step"])
    assert record["ratios"]["gradient_checkpointing"]["loss_max_abs_diff"] < 1e-4  # same computation, recomputed
    assert [(t["config"], t["method"]) for t in report["targets"]] == [("tiny", "motion_embeddings")]
    processor = tiny["processor"]["seconds_per_call"]
    assert set(processor) == {"AttnProcessor2_0", "MotionEmbeddingAttnProcessor", "MotionEmbeddingAttnProcessor (before)"}
    markdown = (tmp_path / "cpu.md").read_text(encoding="utf-8")
    assert "| motion_embeddings | gradient_checkpointing |" in markdown and "applied / plain" in markdown
