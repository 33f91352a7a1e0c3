"""The step loop every training loop runs: a progress bar, the loss history, the NaN guard, the wall and CPU
time of each step, and a checkpoint every ``checkpoint_every`` steps. What one step computes is the caller's."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from motiontune.training.guards import check_finite_loss

logger = logging.getLogger(__name__)


def run_steps(
    label: str,
    steps: int,
    step_fn: Callable[[int], float],
    *,
    history: list[float],
    start: int = 0,
    progress_bar: bool = True,
    checkpoint_every: int = 0,
    save: Callable[[int], None] | None = None,
    save_last: bool = True,
    report_every: int = 1,
    log_progress: bool = False,
    bar_interval: float = 0.1,
    divergence_advice: str = "lower the learning rate",
    step_seconds: list[float] | None = None,
    step_cpu_seconds: list[float] | None = None,
) -> None:
    """Run ``step_fn(step)`` (returns the step's loss) for ``step`` in ``start .. steps - 1``.

    Each loss is checked finite (:func:`~motiontune.training.guards.check_finite_loss`, with
    ``divergence_advice``) and appended to ``history``; every ``report_every`` steps the bar shows the mean of
    the last ``report_every`` losses (and, with ``log_progress``, so does an INFO log line); after every
    ``checkpoint_every``-th step ``save(step + 1)`` is called (``save_last``: also after the final step).
    ``step_seconds`` / ``step_cpu_seconds`` receive each step's wall and process CPU time (all threads).
    """
    bar = tqdm(total=steps, initial=start, desc=label, disable=not progress_bar, mininterval=bar_interval)
    started = time.monotonic()
    try:
        for step in range(start, steps):
            step_started, step_cpu_started = time.perf_counter(), time.process_time()
            loss = step_fn(step)
            check_finite_loss(loss, label, step, divergence_advice)
            history.append(loss)
            if step_seconds is not None:
                step_seconds.append(time.perf_counter() - step_started)
            if step_cpu_seconds is not None:
                step_cpu_seconds.append(time.process_time() - step_cpu_started)
            bar.update(1)
            if report_every and (step + 1) % report_every == 0:
                recent = float(np.mean(history[-report_every:]))
                bar.set_postfix(loss=f"{recent:.4f}")
                if log_progress:
                    logger.info("%s step %d/%d loss %.5f (%.1f s)", label, step + 1, steps, recent, time.monotonic() - started)
            if save is not None and checkpoint_every and (step + 1) % checkpoint_every == 0 and (save_last or step + 1 < steps):
                save(step + 1)
    finally:
        bar.close()

