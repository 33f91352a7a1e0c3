from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import AbstractDataset

from motiontune.parameters import check_parameters
from motiontune.tracking import health

logger = logging.getLogger(__name__)


class ParameterCheckHooks:
    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        # A ParameterError is a UserError: ``kedro run`` (motiontune/cli.py) ends with its message and exit status 2.
        check_parameters(catalog.load("parameters"))


class ResilientMlflowHook:
    """kedro-mlflow's ``MlflowHook`` (one MLflow run per ``kedro run``), unable to fail or stall a run.

    settings.py registers this hook and disables the plugin's own auto-registered copy. Before the run it
    probes the tracking backend (``health.probe``: one HTTP request within ``probe_timeout_s``, no retries, or
    one SQLite transaction within ``sqlite_timeout_s``); if that fails, or any delegated kedro-mlflow call fails later, one warning names the URI and what
    is not logged, and tracking stays off for the rest of the run (``health.suspend``). The pipeline itself runs
    on and writes its outputs to disk. For concurrent runs on one SQLite store, setting up the store (a new
    database's tables, the experiment) is serialised between processes.
    """

    def __init__(self, probe_timeout_s: float = health.PROBE_TIMEOUT_S, sqlite_timeout_s: float = health.SQLITE_TIMEOUT_S, hook: Any = None) -> None:
        if hook is None:
            from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

            hook = MlflowHook()
        self._hook = hook
        self.probe_timeout_s = probe_timeout_s
        self.sqlite_timeout_s = sqlite_timeout_s
        self.tracking_uri: str | None = None
        self._catalog: Any = None
        self._catalog_logging_off = False

    def _delegate(self, while_doing: str, method: Callable[..., Any], *args: Any) -> None:
        from pydantic import ValidationError

        if health.suspended() is not None:
            return
        try:
            method(*args)
        except ValidationError:
            raise  # a mistake in mlflow.yml, not a backend fault
        except Exception as error:  # noqa: BLE001 - tracking must never fail the run
            health.suspend(self.tracking_uri or "the MLflow backend", health.describe_error(error), while_doing)
            self._switch_catalog_logging_off()

    def _switch_catalog_logging_off(self) -> None:
        """kedro-mlflow's own datasets (MlflowArtifactDataset, metrics) then save locally only, like its hook does
        for a pipeline with tracking disabled."""
        if self._catalog is None or self._catalog_logging_off:
            return
        try:
            from kedro_mlflow.io.catalog.switch_catalog_logging import switch_catalog_logging

            switch_catalog_logging(self._catalog, False)
            self._catalog_logging_off = True
        except Exception as error:  # noqa: BLE001
            logger.debug("kedro-mlflow datasets not switched to local only: %s", error)

    def _resolve_tracking_uri(self, context: Any) -> str | None:
        """The tracking URI kedro-mlflow will use: mlflow.yml's ``server.mlflow_tracking_uri``, else
        ``MLFLOW_TRACKING_URI``, else ``mlruns``, made absolute the same way."""
        try:
            import mlflow
            from kedro_mlflow.config.kedro_mlflow_config import _validate_uri

            if mlflow.active_run() is not None:
                return mlflow.get_tracking_uri()
            loader = context.config_loader
            if "mlflow" not in loader.config_patterns:
                loader.config_patterns.update({"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]})
            try:
                conf = loader["mlflow"] or {}
            except Exception:  # noqa: BLE001 - no mlflow.yml: kedro-mlflow's defaults
                conf = {}
            uri = (conf.get("server") or {}).get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
            return _validate_uri(str(context.project_path), uri)
        except Exception as error:  # noqa: BLE001
            logger.debug("MLflow tracking URI not resolved before the run: %s", error)
            return None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        health.resume(self.probe_timeout_s, self.sqlite_timeout_s)
        self._catalog, self._catalog_logging_off = None, False
        self.tracking_uri = self._resolve_tracking_uri(context)
        uri = self.tracking_uri or ""
        with health.store_setup_lock(uri):
            problem = health.probe(uri, self.probe_timeout_s, self.sqlite_timeout_s) if uri else None
            if problem is not None:
                health.suspend(uri, problem, "connecting before the run")
                return
            self._delegate("setting up the MLflow experiment", self._hook.after_context_created, context)

    @hook_impl
    def after_catalog_created(  # noqa: PLR0913
        self, catalog: Any, conf_catalog: dict[str, Any], conf_creds: dict[str, Any], parameters: dict[str, Any],
        save_version: str, load_versions: dict[str, str],
    ) -> None:
        # Only renames kedro-mlflow's metric datasets after their catalog entry; no call to the backend.
        self._delegate("preparing the catalog", self._hook.after_catalog_created, catalog, conf_catalog, conf_creds, parameters, save_version, load_versions)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._catalog, self._catalog_logging_off = catalog, False
        if health.suspended() is not None:
            self._switch_catalog_logging_off()
            return
        self._delegate("starting the MLflow run", self._hook.before_pipeline_run, run_params, pipeline, catalog)

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool) -> None:
        if health.suspended() is not None:
            self._switch_catalog_logging_off()
            return
        self._delegate(f"logging the parameters of node '{node.name}'", self._hook.before_node_run, node, catalog, inputs, is_async)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._delegate("ending the MLflow run", self._hook.after_pipeline_run, run_params, pipeline, catalog)
        self._restore_catalog_logging(catalog)

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._delegate("closing the failed MLflow run", self._hook.on_pipeline_error, error, run_params, pipeline, catalog)
        self._restore_catalog_logging(catalog)

    def _restore_catalog_logging(self, catalog: Any) -> None:
        if self._catalog_logging_off:
            with contextlib.suppress(Exception):
                from kedro_mlflow.io.catalog.switch_catalog_logging import switch_catalog_logging

                switch_catalog_logging(catalog, True)
            self._catalog_logging_off = False


class RunSnapshotDataset(AbstractDataset):
    """A run-level file (one for the whole run, e.g. ``clip_metadata.csv``) as one ``kedro run`` sees it while
    other runs write the same file: saves go through an inter-process lock, and with ``snapshot`` the data is
    read back under that lock right after saving, and that copy is what this run's later nodes load."""

    _MISSING = object()

    def __init__(self, dataset: AbstractDataset, lock_path: str, snapshot: bool) -> None:
        self._dataset = dataset
        self._lock_path = lock_path
        self._snapshot_enabled = snapshot
        self._snapshot: Any = self._MISSING

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import FileLock

        with FileLock(self._lock_path, timeout=600):
            yield

    def load(self) -> Any:
        if self._snapshot is self._MISSING:
            with self._locked():
                return self._dataset.load()
        return copy.deepcopy(self._snapshot)

    def save(self, data: Any) -> None:
        with self._locked():
            self._dataset.save(data)
            if self._snapshot_enabled:
                self._snapshot = self._dataset.load()

    def _exists(self) -> bool:
        return self._snapshot is not self._MISSING or self._dataset.exists()

    def _release(self) -> None:
        self._snapshot = self._MISSING
        self._dataset.release()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe(), "snapshot": self._snapshot_enabled}


class RunIsolationHooks:
    """Two ``kedro run``s in one project at once (e.g. on different motions) keep to their own data.

    Per-motion outputs are partitions named after the motion, so they never collide; but a run-level file such as
    ``clip_metadata.csv`` (which motions this run processes) is rewritten by every run, and a later node would
    read the other run's version (training the other run's motion). Every single-file dataset that the pipeline
    writes is wrapped in a :class:`RunSnapshotDataset`: written under a lock, and, if a later node of the run
    reads it, read back from this run's own copy. The files on disk hold what the last run wrote.
    """

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        consumed = pipeline.all_inputs()
        validated = getattr(catalog, "validator_specs", {}) or {}
        for name in sorted(pipeline.all_outputs()):
            dataset = catalog.get(name)
            path = _single_file(dataset)
            if path is None or name in validated or isinstance(dataset, RunSnapshotDataset):
                continue
            key = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:16]
            lock_path = str(Path(tempfile.gettempdir()) / f"motiontune-dataset-{key}.lock")
            _replace_quietly(catalog, name, RunSnapshotDataset(dataset, lock_path, snapshot=name in consumed))


def _single_file(dataset: Any) -> Path | None:
    """The file of a dataset that holds one file (``filepath``), or None (folders of partitions, memory, ...)."""
    from kedro.io import MemoryDataset

    if dataset is None or isinstance(dataset, MemoryDataset):
        return None
    try:
        from kedro_datasets.partitions import IncrementalDataset, PartitionedDataset

        if isinstance(dataset, (PartitionedDataset, IncrementalDataset)):
            return None
    except ImportError:  # pragma: no cover
        pass
    filepath = getattr(dataset, "_filepath", None)
    if filepath is None:
        return None
    protocol = getattr(dataset, "_protocol", "file")
    path = Path(str(filepath))
    return path.resolve() if protocol in ("file", None) else Path(f"{protocol}://{filepath}")


def _replace_quietly(catalog: Any, name: str, dataset: AbstractDataset) -> None:
    """``catalog[name] = dataset`` without the catalog's "Replacing dataset" warning."""
    catalog_logger = logging.getLogger("kedro.io.data_catalog")

    def drop(record: logging.LogRecord) -> bool:
        return not (record.msg == "Replacing dataset '%s'" and record.args == (name,))

    catalog_logger.addFilter(drop)
    try:
        catalog[name] = dataset
    finally:
        catalog_logger.removeFilter(drop)
