"""benchmarks/world_benchmark_merge.py: one report from several runs of the same world benchmark videos."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("benchmarks/world_benchmark_merge.py")


def _results(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": method, "case": "00_translate_right", "family": "translate", "seed": seed,
                          "prompt": prompt, "trajectory_similarity": value, "direction_correct": float(value > 0.5)}
                         for method, prompt, seed, value in rows])


CONTROLS = [("Backbone + blended inversion", "a blue star", 0, 0.3), ("Backbone + blended inversion", "a red cross", 0, 0.1),
            ("Backbone", "a blue star", 0, 0.0), ("Backbone", "a red cross", 0, 0.2)]


def _write(tmp_path, name: str, rows) -> str:
    path = tmp_path / name
    _results(rows).to_csv(path, index=False)
    return str(path)


def test_each_run_adds_its_methods_and_the_shared_controls_count_once(script, tmp_path):
    first = _write(tmp_path, "me.csv", [*CONTROLS, ("Motion Embeddings", "a blue star", 0, 0.9), ("Motion Embeddings", "a red cross", 0, 0.7),
                                       ("Motion Embeddings (random noise)", "a blue star", 0, 0.4),
                                       ("Motion Embeddings (random noise)", "a red cross", 0, 0.0),
                                       # a video the other run lacks: left out
                                       ("Motion Embeddings", "a blue star", 1, -1.0), ("Backbone + blended inversion", "a blue star", 1, 1.0)])
    second = _write(tmp_path, "md.csv", [*CONTROLS, ("MotionDirector", "a blue star", 0, 0.5), ("MotionDirector", "a red cross", 0, 0.1)])
    out = tmp_path / "merged.md"
    assert script.main(["--results", first, "--results", second, "--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    # Leads over the control from the same noise: ME and MD sample from blend 0.5 of the inversion, the variant from noise.
    assert "| Motion Embeddings | Backbone + blended inversion | 0.80 | 0.20 | +0.60 [+0.60, +0.60] | 2 |" in report
    assert "| Motion Embeddings (random noise) | Backbone | 0.20 | 0.10 | +0.10 [-0.20, +0.40] | 2 |" in report
    assert "| MotionDirector | Backbone + blended inversion | 0.30 | 0.20 | +0.10 [+0.00, +0.20] | 2 |" in report
    merged = pd.read_csv(out.with_suffix(".csv"))
    assert merged.groupby("method").size().to_dict() == {"Backbone": 2, "Backbone + blended inversion": 2, "Motion Embeddings": 2,
                                                         "Motion Embeddings (random noise)": 2, "MotionDirector": 2}
    assert "on 2 (reference seed, case, seed, target prompt) videos (reference seeds [7];" in report


def test_controls_that_disagree_are_not_one_benchmark(script, tmp_path, capsys):
    first = _write(tmp_path, "a.csv", CONTROLS)
    changed = [(method, prompt, seed, value + 0.01 if method == "Backbone" and prompt == "a red cross" else value)
               for method, prompt, seed, value in CONTROLS]
    second = _write(tmp_path, "b.csv", changed)
    with pytest.raises(SystemExit) as raised:
        script.main(["--results", first, "--results", second, "--out", str(tmp_path / "r.md")])
    error = capsys.readouterr().err
    assert raised.value.code == 2
    assert "disagree on Backbone, reference seed 7, case 00_translate_right, seed 0, 'a red cross'" in error and "not runs of one benchmark" in error


@pytest.mark.parametrize("given", [["one.csv"], ["one.csv", "missing.csv"]])
def test_one_table_or_a_missing_one_is_a_one_line_error(script, tmp_path, capsys, given):
    _write(tmp_path, "one.csv", CONTROLS)
    arguments = [item for name in given for item in ("--results", str(tmp_path / name))]
    with pytest.raises(SystemExit) as raised:
        script.main([*arguments, "--out", str(tmp_path / "r.md")])
    assert raised.value.code == 2 and "--results:" in capsys.readouterr().err


def test_runs_of_other_seeds_pool_with_all_videos_and_families_filter(script, tmp_path):
    def rows(seed: int, me: tuple[float, float]) -> list[tuple[str, str, int, float]]:
        return [("Backbone + blended inversion", "a blue star", seed, 0.3), ("Backbone + blended inversion", "a red cross", seed, 0.1),
                ("Motion Embeddings", "a blue star", seed, me[0]), ("Motion Embeddings", "a red cross", seed, me[1])]

    seeds_01 = _results(rows(0, (0.9, 0.7)) + rows(1, (0.5, 0.1)))
    other_family = _results(rows(0, (-1.0, -1.0))).assign(case="04_circle_clockwise", family="circle_clockwise")
    pd.concat([seeds_01, other_family]).to_csv(tmp_path / "s01.csv", index=False)
    _results(rows(2, (0.3, 0.3))).to_csv(tmp_path / "s2.csv", index=False)
    out = tmp_path / "pooled.md"
    assert script.main(["--results", str(tmp_path / "s01.csv"), "--results", str(tmp_path / "s2.csv"), "--videos", "all",
                        "--families", "translate", "--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    # Six translate videos over seeds 0-2; leads 0.6, 0.6, 0.2, 0.0, 0.0, 0.2; the circle's -1.0 rows are left out.
    assert "| Motion Embeddings | Backbone + blended inversion | 0.47 | 0.20 | +0.27 [" in report
    assert "videos (reference seeds [7]; seeds [0, 1, 2]; families translate;" in report and "on 6 (" in report
    # The default keeps the videos both runs have: none here.
    with pytest.raises(SystemExit) as raised:
        script.main(["--results", str(tmp_path / "s01.csv"), "--results", str(tmp_path / "s2.csv"), "--out", str(out)])
    assert raised.value.code == 2


def _two_draws(tmp_path, other_seed: int) -> tuple[str, str]:
    """A table written before the reference_seed column (drawn at the configured seed 7) and a run at
    ``other_seed``: the same case names, seeds and prompts, but other reference clips, so other control scores."""
    untagged = _write(tmp_path, "r7.csv", [*CONTROLS, ("Motion Embeddings", "a blue star", 0, 0.9),
                                           ("Motion Embeddings", "a red cross", 0, 0.7)])
    other = _results([("Backbone + blended inversion", "a blue star", 0, 0.5), ("Backbone + blended inversion", "a red cross", 0, 0.5),
                      ("Motion Embeddings", "a blue star", 0, 0.5), ("Motion Embeddings", "a red cross", 0, 0.3)])
    path = tmp_path / f"r{other_seed}.csv"
    other.assign(reference_seed=other_seed).to_csv(path, index=False)
    return untagged, str(path)


# Seed 10 too: as text "10" sorts before "7", and the per-draw columns must still go r7, r10.
@pytest.mark.parametrize("other_seed", [8, 10])
def test_other_reference_draws_of_the_same_cases_stay_apart(script, tmp_path, capsys, other_seed):
    untagged, other = _two_draws(tmp_path, other_seed)
    out = tmp_path / "draws.md"
    assert script.main(["--results", untagged, "--results", other, "--videos", "all", "--out", str(out)]) == 0
    report = out.read_text(encoding="utf-8")
    # Paired within each draw: leads +0.6, +0.6 (seed 7's draw) and 0.0, -0.2 (the other's), mean +0.25.
    assert "| Motion Embeddings | Backbone + blended inversion | 0.60 | 0.35 | +0.25 [" in report
    assert f"on 4 (reference seed, case, seed, target prompt) videos (reference seeds [7, {other_seed}];" in report
    assert f"| trajectory_similarity | translate r7 | translate r{other_seed} |" in report
    assert "| Motion Embeddings | 0.80 | 0.40 |" in report
    assert sorted(pd.read_csv(out.with_suffix(".csv"))["reference_seed"].unique().tolist()) == [7, other_seed]
    # Told the untagged table was drawn at the other seed, its controls contradict that run's: not one benchmark.
    with pytest.raises(SystemExit) as raised:
        script.main(["--results", untagged, "--results", other, "--videos", "all",
                     "--untagged-reference-seed", str(other_seed), "--out", str(out)])
    assert raised.value.code == 2 and f"reference seed {other_seed}, case 00_translate_right" in capsys.readouterr().err
