import numpy as np
import pandas as pd
import pytest

from motiontune.benchmark import metric_bar_plots, summary_markdown, summary_table


@pytest.fixture
def results():
    return pd.DataFrame(
        [
            {"method": "A", "motion": "m1", "motion_fidelity": 0.9, "clip_text_similarity": 0.30, "temporal_consistency": np.nan, "fid": np.nan},
            {"method": "A", "motion": "m2", "motion_fidelity": 0.7, "clip_text_similarity": 0.20, "temporal_consistency": np.nan, "fid": np.nan},
            {"method": "B", "motion": "m1", "motion_fidelity": 0.5, "clip_text_similarity": 0.10, "temporal_consistency": np.nan, "fid": np.nan},
        ]
    )


def test_summary_is_the_mean_per_method_in_table_1_layout(results):
    summary = summary_table(results)
    assert list(summary["Method"]) == ["A", "B"]
    assert summary.loc[0, "Motion Fidelity"] == pytest.approx(0.8)
    assert summary.loc[0, "Text Similarity"] == pytest.approx(0.25)
    assert summary.loc[1, "Motion Fidelity"] == pytest.approx(0.5)
    assert summary["FID"].isna().all() and list(summary["Videos"]) == [2, 1]
    markdown = summary_markdown(summary)
    assert markdown.splitlines()[0] == "| Method | Text Similarity \u2191 | Motion Fidelity \u2191 | Temporal Consistency \u2191 | FID \u2193 | Videos |"
    assert "| A | 0.2500 | 0.8000 | n/a | n/a | 2 |" in markdown


def test_one_bar_plot_per_computed_metric(results):
    plots = metric_bar_plots(results)
    assert sorted(plots) == ["clip_text_similarity", "motion_fidelity"]
    assert all(image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 for image in plots.values())


def _videos(value: int) -> list[np.ndarray]:
    return [np.full((2, 4, 4, 3), value, dtype=np.uint8)]


def test_the_shared_runner_stores_each_run_and_a_rerun_redoes_only_what_is_missing_or_changed(tmp_path):
    """Both benchmarks run through execute_runs: a run whose videos are stored with the same settings is not
    redone, one with other settings is, and one that died is redone on the rerun."""
    from motiontune.benchmark import PlannedRun, execute_runs
    from motiontune.executors import Job, LocalExecutor

    calls: list[str] = []

    def job(name: str, value: int, fail: bool = False) -> list[np.ndarray]:
        calls.append(name)
        if fail:
            raise RuntimeError("killed")
        return _videos(value)

    def runs(fail_second: bool, second_setting: int = 1) -> list[PlannedRun]:
        return [
            PlannedRun(("ref", "A", 0), {"s": 0}, lambda: Job("ref/a/0", job, {"name": "first", "value": 3})),
            PlannedRun(("ref", "B (r=2)", 1), {"s": second_setting},
                       lambda: Job("ref/b-r-2/1", job, {"name": "second", "value": 5, "fail": fail_second})),
        ]

    with pytest.raises(RuntimeError, match="killed"):
        execute_runs(runs(fail_second=True), LocalExecutor(), tmp_path, "test", progress=False)
    assert calls == ["first", "second"] and (tmp_path / "ref" / "a" / "0.safetensors").exists()
    outputs = execute_runs(runs(fail_second=False), LocalExecutor(), tmp_path, "test", progress=False)
    assert calls == ["first", "second", "second"]  # the first run's videos came from the work folder
    assert np.array_equal(outputs[("ref", "A", 0)][0], _videos(3)[0]) and np.array_equal(outputs[("ref", "B (r=2)", 1)][0], _videos(5)[0])
    execute_runs(runs(fail_second=False, second_setting=2), LocalExecutor(), tmp_path, "test", progress=False)
    assert calls == ["first", "second", "second", "second"]  # other settings: redone
