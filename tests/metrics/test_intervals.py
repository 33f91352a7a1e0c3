"""The bootstrap interval of a mean against the normal-theory interval it approaches for large samples."""

from __future__ import annotations

import numpy as np
import pytest

from motiontune.metrics.intervals import bootstrap_interval


def test_a_large_sample_gives_the_normal_theory_interval():
    values = np.random.default_rng(3).normal(2.0, 1.5, size=900)
    low, high = bootstrap_interval(values)
    half_width = 1.959964 * values.std(ddof=1) / np.sqrt(values.size)  # z_0.975 * standard error
    assert low == pytest.approx(values.mean() - half_width, abs=0.02)
    assert high == pytest.approx(values.mean() + half_width, abs=0.02)
    narrower = bootstrap_interval(values, confidence=0.5)
    assert low < narrower[0] < narrower[1] < high


def test_nans_are_left_out_and_degenerate_samples_have_degenerate_intervals():
    assert bootstrap_interval(np.array([1.0, np.nan, 1.0])) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_interval(np.array([np.nan]))))
    low, high = bootstrap_interval(np.array([0.0, 1.0]))
    assert (low, high) == (0.0, 1.0)  # resamples of two values: means 0, 0.5, 1
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval(np.ones(3), confidence=1.0)
