"""Is the MLflow backend usable? A quick probe, and what to do when it is not.

A run whose tracking backend is down (server unreachable, SQLite database locked) must still finish with its
outputs on disk. The Kedro hook (``motiontune.pipelines.hooks.ResilientMlflowHook``) probes the backend before
the run starts; when the probe fails, or a tracking call fails later, tracking is *suspended* for the rest of
the run: one warning says which URI failed and what is not logged, and every ``motiontune.tracking`` call
after that is skipped instead of waiting on the backend again (MLflow's own HTTP retries take about four
minutes per call with a server that is down).

Concurrent runs on one SQLite store: SQLite lets one writer at a time and MLflow's sessions wait up to 20 s
for the lock (MLflow sets ``PRAGMA busy_timeout = 20000`` itself). Creating a new database's tables and the
experiment is serialised between processes by :func:`store_setup_lock`: two processes creating the tables of
a fresh ``mlflow.db`` at once otherwise fail with ``duplicate column name: step``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

NOT_LOGGED = "parameters, metrics and loss curves, motion and video artifacts, registered model versions"
PROBE_TIMEOUT_S = 5.0  # an HTTP server's answer
SQLITE_TIMEOUT_S = 20.0  # a SQLite write lock: as long as MLflow's own sessions wait for it


@dataclass(frozen=True)
class Suspension:
    uri: str
    reason: str
    run_id: str | None = None


_suspension: Suspension | None = None
_timeouts = (PROBE_TIMEOUT_S, SQLITE_TIMEOUT_S)


def suspended() -> Suspension | None:
    """Why tracking is suspended (``None``: it is not). It lasts until :func:`resume` (the hook, at the start of a
    ``kedro run``) or until another MLflow run is started (e.g. the next run in a notebook)."""
    global _suspension
    if _suspension is not None:
        try:
            import mlflow

            run = mlflow.active_run()
        except Exception:  # noqa: BLE001
            run = None
        if run is not None and run.info.run_id != _suspension.run_id:
            _suspension = None
    return _suspension


def resume(probe_timeout_s: float = PROBE_TIMEOUT_S, sqlite_timeout_s: float = SQLITE_TIMEOUT_S) -> None:
    """Track again (the start of a new run); the timeouts are those of the probes after a failed call."""
    global _suspension, _timeouts
    _suspension = None
    _timeouts = (probe_timeout_s, sqlite_timeout_s)


def suspend(uri: str, reason: str, while_doing: str = "starting the run") -> Suspension:
    """Stop tracking for the rest of this run with one warning naming ``uri`` and what is not logged. The active
    MLflow runs of this thread are dropped *without* contacting the backend (ending them would wait on it again)."""
    global _suspension
    if _suspension is not None:
        return _suspension
    run_id = forget_active_runs()
    _suspension = Suspension(uri, reason, run_id)
    if run_id is None:
        logger.warning(
            "MLflow tracking is off for this run: %s failed while %s (%s). Not logged to MLflow: the run and all its %s. "
            "The pipeline goes on and writes its outputs to disk as usual.",
            uri, while_doing, reason, NOT_LOGGED,
        )
    else:
        logger.warning(
            "MLflow tracking stopped for the rest of this run: %s failed while %s (%s). Not logged to MLflow from here on: "
            "%s, and the run's end (MLflow run %s stays RUNNING, incomplete). The pipeline goes on and writes its outputs "
            "to disk as usual.",
            uri, while_doing, reason, NOT_LOGGED, run_id,
        )
    return _suspension


def forget_active_runs() -> str | None:
    """Drop this thread's active MLflow runs locally (no call to the backend); returns the outermost run id."""
    try:
        import mlflow
        from mlflow.tracking import fluent

        run = mlflow.active_run()
        if run is None:
            return None
        stack = fluent._active_run_stack.get()  # private, but mlflow.end_run() would call the broken backend
        run_id = stack[0].info.run_id if stack else run.info.run_id
        stack.clear()
        os.environ.pop("MLFLOW_RUN_ID", None)
        return run_id
    except Exception:  # noqa: BLE001 - an mlflow without that attribute: end the run, the backend may answer
        try:
            import mlflow

            run = mlflow.active_run()
            run_id = run.info.run_id if run else None
            while mlflow.active_run() is not None:
                mlflow.end_run("FAILED")  # pops the run before it calls the backend
            return run_id
        except Exception:  # noqa: BLE001
            return None


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory as MLflow reads it), or None."""
    if not uri.startswith("sqlite"):
        return None
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    path = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
    return Path(path) if path and path != ":memory:" else None


def probe(uri: str, timeout_s: float = PROBE_TIMEOUT_S, sqlite_timeout_s: float = SQLITE_TIMEOUT_S) -> str | None:
    """``None`` when the tracking backend at ``uri`` answers in time, else what is wrong.

    - ``http(s)://``: one request to the server's ``/health`` (no retries); no answer within ``timeout_s``, or
      a 5xx, fails.
    - ``sqlite:///``: the database can be read and written (``BEGIN IMMEDIATE``) within ``sqlite_timeout_s``; a
      database locked by another process for longer fails.
    - anything else (``databricks``, ``postgresql://``, ...): not probed, ``None``.
    """
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        return _probe_http(uri, timeout_s)
    if scheme.startswith("sqlite"):
        path = sqlite_path(uri)
        return None if path is None else _probe_sqlite(path, sqlite_timeout_s)
    return None


def _probe_http(uri: str, timeout_s: float) -> str | None:
    import requests

    url = uri.rstrip("/") + "/health"
    try:
        response = requests.get(url, timeout=timeout_s)
    except requests.Timeout:
        return f"no answer from {url} within {timeout_s:g} s"
    except requests.RequestException as error:
        cause = re.search(r"\[Errno -?\d+\][^'\")]*", str(error))  # e.g. [Errno 111] Connection refused
        return f"cannot connect to {url} ({cause.group(0).strip() if cause else describe_error(error)})"
    if response.status_code >= 500:
        return f"{url} answered HTTP {response.status_code}"
    return None


def _probe_sqlite(path: Path, timeout_s: float) -> str | None:
    if not path.parent.exists():
        return None  # MLflow creates the folder
    try:
        connection = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None)
    except sqlite3.Error as error:
        return f"cannot open {path}: {error}"
    try:
        connection.execute("PRAGMA schema_version").fetchone()  # needs a read lock
        connection.execute("BEGIN IMMEDIATE")  # needs the write lock
        connection.execute("ROLLBACK")
    except sqlite3.Error as error:
        return f"{path}: {error} (waited {timeout_s:g} s)"
    finally:
        connection.close()
    return None


@contextlib.contextmanager
def store_setup_lock(uri: str, timeout_s: float = 120.0) -> Iterator[None]:
    """Between processes on this machine: one at a time sets up the SQLite store at ``uri`` (creates the tables
    of a new database, the experiment). A lock file in the temporary folder, keyed by the database's path;
    nothing for other stores. Past ``timeout_s`` it goes on without the lock."""
    path = sqlite_path(uri)
    try:
        from filelock import FileLock, Timeout
    except ImportError:  # pragma: no cover - filelock comes with torch
        path = None
    if path is None:
        yield
        return
    key = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:16]
    lock = FileLock(str(Path(tempfile.gettempdir()) / f"motiontune-mlflow-{key}.lock"))
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        logger.warning("MLflow: %s is being set up by another process for over %g s; going on", uri, timeout_s)
        yield
        return
    try:
        yield
    finally:
        lock.release()


def after_failure(what: str, error: BaseException, uri: str | None = None) -> None:
    """A tracking call failed (``what`` was not logged, already warned): if the backend itself is now unusable,
    suspend tracking for the rest of the run, so that the next calls do not wait on it again."""
    if _suspension is not None:
        return
    if uri is None:
        import mlflow

        uri = mlflow.get_tracking_uri()
    problem = probe(uri, *_timeouts)
    if problem is not None:
        suspend(uri, problem, while_doing=f"logging {what}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def describe_error(error: BaseException) -> str:
    """One line for a warning (MLflow's errors carry whole tracebacks of the HTTP layer)."""
    return f"{type(error).__name__}: {_first_line(error)}"
