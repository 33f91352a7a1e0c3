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
