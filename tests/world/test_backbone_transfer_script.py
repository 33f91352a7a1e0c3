"""benchmarks/world_backbone_transfer.py: two backbones' leads over their same-noise controls, on shared videos."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/world_backbone_transfer.py")


def _results(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": method, "case": "00_translate_right", "family": "translate", "seed": seed,
                          "prompt": prompt, "trajectory_similarity": value, "direction_correct": float(value > 0.5)}
                         for method, prompt, seed, value in rows])


def test_leads_are_paired_over_the_videos_both_backbones_have(script, tmp_path):
    first = _results([("Motion Embeddings", "a blue star", 0, 0.9), ("Backbone + blended inversion", "a blue star", 0, 0.3),
                      ("Motion Embeddings", "a red cross", 0, 0.7), ("Backbone + blended inversion", "a red cross", 0, 0.1),
                      # seed 1 only in this table: left out of both reports
                      ("Motion Embeddings", "a blue star", 1, -1.0), ("Backbone + blended inversion", "a blue star", 1, 1.0)])
    second = _results([("Motion Embeddings", "a blue star", 0, 0.2), ("Backbone + blended inversion", "a blue star", 0, 0.4),
                       ("Motion Embeddings", "a red cross", 0, 0.0), ("Backbone + blended inversion", "a red cross", 0, 0.2)])
    first.to_csv(tmp_path / "a.csv", index=False)
    second.to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "report.md"
    assert script.main(["--results", f"A={tmp_path / 'a.csv'}", "--results", f"B={tmp_path / 'b.csv'}", "--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    section_a, section_b = report.split("## A")[1].split("## B")
    # Motion Embeddings samples from blend 0.5 of the inversion (its inference default), so that is its control.
    assert "| Motion Embeddings | Backbone + blended inversion | 0.80 | 0.20 | +0.60 [+0.60, +0.60] | 2 |" in section_a
    assert "| Motion Embeddings | Backbone + blended inversion | 0.10 | 0.30 | -0.20 [-0.20, -0.20] | 2 |" in section_b
    assert "on the same 2 (case, seed, target prompt) videos" in report


def test_a_missing_results_file_is_a_one_line_error(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        script.main(["--results", f"A={tmp_path / 'missing.csv'}", "--out", str(tmp_path / "r.md")])
    assert raised.value.code == 2 and "expected LABEL=CSV" in capsys.readouterr().err
