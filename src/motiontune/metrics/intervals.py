"""Uncertainty of a mean: the percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13).

    low, high = bootstrap_interval(values)          # 95% interval of values.mean()
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_ROUNDS = 2000  # resamples; the interval's ends move by < 0.01 between seeds at the benchmark's sizes


def bootstrap_interval(values: np.ndarray, confidence: float = 0.95, rounds: int = BOOTSTRAP_ROUNDS,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (1-D; NaNs left out): the ``(1 - confidence) / 2``
    and ``(1 + confidence) / 2`` quantiles of the means of ``rounds`` resamples with replacement. ``(nan, nan)``
    when no value is left; a single value gives a zero-width interval (a resample can only repeat it)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(rounds, values.size), replace=True).mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
