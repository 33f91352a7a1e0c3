"""Where independent jobs run: in this process (``local``, the default) or as Ray tasks (``ray``).

A job is a module-level function and its keyword arguments (importable on any worker, so a cluster runs the same
code), with a key that names it. The driver hands a list of jobs to an executor and gets their results back in
order; the driver alone writes outputs and logs to MLflow, so the tracking store and the data folders keep one
writer. Ray is imported only when the ``ray`` executor is built (``pip install -e ".[distributed]"``).

Ray's own semantics decide retries: ``max_retries`` re-runs a task whose worker process died (killed, out of
memory, a lost node); an exception raised by the job itself (a user's bad parameter, a NaN) is not retried and is
raised in the driver as the job's own exception, so its one-line message reaches the user. A retried job resumes
from the checkpoints it wrote under its work directory (``job_work_dir``), which every worker must see.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from motiontune.backbone.loading import Backbone, BackboneSource
from motiontune.errors import UserError
from motiontune.sections import build_section

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
# Environment variable naming a running Ray cluster (Ray's own convention), used when ``ray.address`` is null.
RAY_ADDRESS_VARIABLE = "RAY_ADDRESS"


class ExecutorError(RuntimeError, UserError):
    """The executor cannot run jobs (Ray missing, a cluster that does not answer)."""


@dataclass(frozen=True)
class Job:
    """``function(**kwargs)`` under the name ``key`` (unique within one run)."""

    key: str
    function: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


# Called with (index of the job, its result) as each job finishes, e.g. to store it before the others end.
ResultCallback = Callable[[int, Any], None]


class Executor(Protocol):
    name: str

    def run(self, jobs: Sequence[Job], on_result: ResultCallback | None = None) -> list[Any]:
        """The results of ``jobs``, in their order; ``on_result`` sees each as soon as it is there."""

    def close(self) -> None:
        """Release what the executor started."""

    def job_backbone(self, backbone: Backbone) -> Backbone | BackboneSource:
        """What a job receives to use ``backbone``: the loaded one in this process, else where to load it from."""


class LocalExecutor:
    """Runs the jobs one after the other in this process (today's behaviour)."""

    name = "local"

    def run(self, jobs: Sequence[Job], on_result: ResultCallback | None = None) -> list[Any]:
        results = []
        for index, job in enumerate(jobs):
            results.append(job.function(**job.kwargs))
            if on_result is not None:
                on_result(index, results[-1])
        return results

    def close(self) -> None:
        pass

    def job_backbone(self, backbone: Backbone) -> Backbone:
        return backbone


@dataclass(frozen=True)
class RayConfig:
    """The ``ray`` parameters (conf/base/parameters_executor.yml): the cluster and each job's resources."""

    address: str | None = None  # null: $RAY_ADDRESS if set, else a local instance sized by local_num_cpus
    local_num_cpus: int | None = None  # CPUs of the local instance (null: all of this machine's)
    num_cpus: float = 1.0  # per job
    num_gpus: float = 0.0  # per job
    memory: int | None = None  # bytes per job, for Ray's scheduler (null: no reservation)
    max_retries: int = 3  # re-runs of a job whose worker died
    connect_timeout_s: float = 5.0  # how long an address may take to answer before the run stops

    def __post_init__(self) -> None:
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError("ray.num_cpus and ray.num_gpus: must be >= 0")
        if self.max_retries < 0:
            raise ValueError(f"ray.max_retries: must be >= 0, got {self.max_retries}")
        if self.local_num_cpus is not None and self.local_num_cpus < 1:
            raise ValueError(f"ray.local_num_cpus: must be at least 1, got {self.local_num_cpus}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> RayConfig:
        return build_section(cls, params, "ray")


def cluster_address(config: RayConfig) -> str | None:
    """``ray.address``, else ``$RAY_ADDRESS``, else None (start a local instance)."""
    return config.address or os.environ.get(RAY_ADDRESS_VARIABLE) or None


def check_reachable(address: str, timeout_s: float) -> None:
    """Raise :class:`ExecutorError` within ``timeout_s`` when nothing listens at ``address``
    (``host:port`` or ``ray://host:port``; ``auto`` / ``local`` are Ray's own and pass)."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"ray address '{address}': expected host:port or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise ExecutorError(
            f"ray address '{address}' does not answer ({error.__class__.__name__}: {error}); start the cluster "
            f"(ray start --head) or unset {RAY_ADDRESS_VARIABLE} / ray.address to run on a local Ray instance"
        ) from None


class RayExecutor:
    """Each job a Ray task with ``num_cpus`` / ``num_gpus`` / ``memory`` and ``max_retries`` for worker death."""

    name = "ray"

    def __init__(self, config: RayConfig) -> None:
        try:
            import ray
        except ImportError:
            raise ExecutorError('executor ray: Ray is not installed (pip install -e ".[distributed]" -c constraints.txt)') from None
        self.config = config
        self._ray = ray
        self._started_here = False
        if not ray.is_initialized():
            address = cluster_address(config)
            if address:
                check_reachable(address, config.connect_timeout_s)
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=config.local_num_cpus, include_dashboard=False, log_to_driver=False)
                self._started_here = True
            logger.info("Ray: %s", ray.cluster_resources())

    def run(self, jobs: Sequence[Job], on_result: ResultCallback | None = None) -> list[Any]:
        ray = self._ray
        options: dict[str, Any] = {"num_cpus": self.config.num_cpus, "num_gpus": self.config.num_gpus,
                                   "max_retries": self.config.max_retries, "retry_exceptions": False}
        if self.config.memory:
            options["memory"] = int(self.config.memory)
        started = time.perf_counter()
        refs = [ray.remote(_run_job).options(name=job.key, **options).remote(job.function, dict(job.kwargs)) for job in jobs]
        index_of = {ref: index for index, ref in enumerate(refs)}
        results: list[Any] = [None] * len(jobs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            index = index_of[done[0]]
            try:
                results[index] = ray.get(done[0])
            except ray.exceptions.RayTaskError as error:
                for ref in pending:
                    ray.cancel(ref)
                # The job's own exception (not retried): raise it as itself, so its message is the user's line.
                cause = getattr(error, "cause", None)
                if isinstance(cause, BaseException):
                    raise cause from None
                raise
            if on_result is not None:
                on_result(index, results[index])
        logger.info("Ray ran %d jobs in %.1f s", len(jobs), time.perf_counter() - started)
        return results

    def job_backbone(self, backbone: Backbone) -> BackboneSource:
        return BackboneSource.of(backbone)  # workers load it once per process, the weights never travel

    def close(self) -> None:
        """Stop the local Ray instance this executor started (a cluster it connected to stays)."""
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def _run_job(function: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    return function(**kwargs)


def executor_problems(name: object, ray: Mapping[str, Any] | None, section: str) -> list[str]:
    """What is wrong with running jobs on ``name`` with these ``ray`` parameters, checked before any work: the name,
    the ``ray`` keys, Ray being installed, and a configured cluster answering (within ``connect_timeout_s``)."""
    if name not in EXECUTORS:
        return [f"{section}.executor: '{name}' is not one of {list(EXECUTORS)}"]
    try:
        config = RayConfig.from_params(ray)
    except (TypeError, ValueError) as error:
        return [str(error)]
    if name != "ray":
        return []
    try:
        import ray as _  # noqa: F401
    except ImportError:
        return [f'{section}.executor: ray needs Ray (pip install -e ".[distributed]" -c constraints.txt)']
    address = cluster_address(config)
    try:
        if address:
            check_reachable(address, config.connect_timeout_s)
    except ExecutorError as error:
        return [f"{section}.executor: {error}"]
    return []


def build_executor(name: str, ray: Mapping[str, Any] | None = None) -> Executor:
    """``local`` or ``ray`` (with the ``ray`` parameters)."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(RayConfig.from_params(ray))
    raise ValueError(f"executor: '{name}' is not one of {list(EXECUTORS)}")


def job_work_dir(root: str | Path | None, *parts: object) -> Path | None:
    """``<root>/<part>/<part>/...`` for a job's checkpoints (None when no root is configured)."""
    if root is None:
        return None
    return Path(root).joinpath(*(str(part) for part in parts))
