"""Learned motions in the MLflow model registry: register, resolve, promote, list.

Every trained motion is logged as an ``mlflow.pyfunc`` model *from code* (``pyfunc_model.py``; nothing is
pickled) with the motion files as its artifacts, and registered as ``motion-<name>``: one new version per
training run. Aliases:

- ``latest``: MLflow resolves ``models:/motion-<name>@latest`` to the newest version by itself (it reserves the
  alias name, so it cannot be, and need not be, set);
- ``champion`` (or any other alias): set by :func:`promote`, from the command line::

      motiontune promote <name> <version>            # or: python -m motiontune.tracking.registry promote ...
      motiontune motions                             # list registered motions, versions and aliases

The tracking/registry URI is ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` (as in
``conf/base/mlflow.yml``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODEL_PREFIX = "motion-"
CHAMPION = "champion"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PYFUNC_MODEL_FILE = Path(__file__).with_name("pyfunc_model.py")


def model_name(motion_name: str) -> str:
    """``motion-<name>``: the registered model of a motion (a name already prefixed is kept)."""
    return motion_name if motion_name.startswith(MODEL_PREFIX) else f"{MODEL_PREFIX}{motion_name}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@contextlib.contextmanager
def mlflow_uris(uri: str) -> Iterator[None]:
    """MLflow's tracking and registry URIs set to ``uri`` for the duration, then put back as they were, the
    ``MLFLOW_*`` environment variables included (``set_tracking_uri`` / ``set_registry_uri`` write them, and
    subprocesses started later would inherit them)."""
    import mlflow

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    environment = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
            del os.environ[key]
        os.environ.update(environment)


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    """``git rev-parse HEAD`` of the working directory, or ``unknown`` (no git, not a repository)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else "unknown"


# The pyfunc model's own default of a generation option where it differs from GenerationConfig's (a model
# served or called from code prints no progress bar).
PREDICT_DEFAULTS = {"progress_bar": False}
# ``predict`` params beside the generation options: where and how to load the backbone, and what to return.
SERVING_PARAMS = (
    ("backbone", "string", None),  # a folder or hub id; null: the one the motion records
    ("revision", "string", None),
    ("motion_adapter", "string", None),  # AnimateDiff from Stable Diffusion: the adapter; null: the one recorded
    ("motion_adapter_revision", "string", None),
    ("device", "string", "auto"),
    ("dtype", "string", "float32"),
    ("output_dir", "string", None),
    ("fps", "double", 8.0),
)
_MLFLOW_TYPES = {bool: "boolean", int: "long", float: "double", str: "string"}


def generation_param_specs() -> list[tuple[str, str, Any]]:
    """``(name, MLflow type, default)`` of every generation option, one per ``GenerationConfig`` field (a None
    default means the motion's inference default)."""
    import dataclasses
    import types
    import typing

    from motiontune.generation.generate import GenerationConfig

    hints = typing.get_type_hints(GenerationConfig)
    specs = []
    for field in dataclasses.fields(GenerationConfig):
        hint = hints[field.name]
        kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)] if isinstance(hint, types.UnionType) else [hint]
        if len(kinds) != 1 or kinds[0] not in _MLFLOW_TYPES:
            raise TypeError(f"GenerationConfig.{field.name}: type {hint} has no MLflow param type (one of {sorted(t.__name__ for t in _MLFLOW_TYPES)})")
        specs.append((field.name, _MLFLOW_TYPES[kinds[0]], PREDICT_DEFAULTS.get(field.name, field.default)))
    return specs


def motion_signature() -> Any:
    """Input: one string column, the prompts; params: the generation options (every ``GenerationConfig``
    field) and :data:`SERVING_PARAMS` of ``pyfunc_model.MotionModel``."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    params = [ParamSpec(name, kind, default) for name, kind, default in (*generation_param_specs(), *SERVING_PARAMS)]
    return ModelSignature(inputs=Schema([ColSpec("string")]), params=ParamSchema(params))


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "torch", "diffusers", "transformers", "safetensors", "motiontune"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


@functools.lru_cache(maxsize=2)
def cached_backbone(
    source: str, revision: str | None, device: str, dtype: str,
    motion_adapter: str | None = None, motion_adapter_revision: str | None = None,
) -> Any:
    """One loaded backbone per process for the registered motion models (each ``load_model`` is a new model
    object; they share the backbone, which a motion leaves unchanged after generating)."""
    from motiontune.backbone.loading import load_backbone

    return load_backbone(
        source, revision=revision, device=device, dtype=dtype,
        motion_adapter=motion_adapter, motion_adapter_revision=motion_adapter_revision,
    )


def register_motion(
    name: str,
    artifact: Any,
    reference: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Any:
    """Log ``artifact`` (a :class:`~motiontune.methods.artifact.MotionArtifact`) in the active MLflow run as a
    pyfunc model from code and register it as ``motion-<name>``; returns the new ``ModelVersion``.

    ``reference``: the reference's encoded features; its ``latents``, base-model DDIM inversion
    ``inverted_latents`` (1, C, F, h, w each) and ``inversion_steps`` are stored so the ``inversion`` / ``blend`` /
    ``lowfreq`` noise inits work from the registry (a customised inversion is computed from the latents); without
    them those inits fall back to ``random``.
    Raises if no run is active or MLflow fails (callers that must not fail use :func:`register_trained_motion`).
    """
    import mlflow
    from safetensors.torch import save_file

    from motiontune.sampling.features import INVERSION_STEPS, INVERTED_LATENTS, LATENTS
    from motiontune.methods.artifact import save_motion_artifact

    stored = {key: reference[key].detach().cpu().contiguous() for key in (LATENTS, INVERTED_LATENTS, INVERSION_STEPS)
              if reference is not None and key in reference}

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_motion: no active MLflow run")
    registered = model_name(name)
    backbone = dict(artifact.manifest["backbone"])
    local_backbone = Path(str(backbone["id_or_path"]))
    model_config = {"backbone_local_path": str(local_backbone.resolve()) if local_backbone.is_dir() else None}
    version_tags = {
        "motion": name,
        "method": artifact.method,
        "method_version": str(artifact.manifest.get("method_version")),
        "backbone": str(backbone["id_or_path"]),
        "backbone_revision": str(backbone.get("revision")),
        "backbone_unet_config_sha256": str(backbone.get("unet_config_sha256")),
        "backbone_family": str(backbone.get("family", "unet3d")),
        "backbone_motion_adapter": str(backbone.get("motion_adapter")),
        "source_video_sha256": str(artifact.manifest["source_video"]["sha256"]),
        "source_video_path": str(artifact.manifest["source_video"]["path"]),
        "train_steps": str(artifact.manifest["train"]["steps"]),
        "final_loss": str(artifact.manifest["train"]["final_loss"]),
        "git_commit": git_commit(),
        "reference_inversion": str(INVERTED_LATENTS in stored).lower(),
        **{key: str(value) for key, value in (tags or {}).items()},
    }
    with tempfile.TemporaryDirectory() as scratch:
        artifacts = {"motion": str(save_motion_artifact(Path(scratch) / "motion", artifact))}
        if INVERTED_LATENTS in stored:
            path = Path(scratch) / "reference_inversion.safetensors"
            save_file(stored, str(path))
            artifacts["reference_inversion"] = str(path)
        with warnings.catch_warnings():
            # The signature is explicit; an input example would make MLflow run a generation at log time.
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            info = mlflow.pyfunc.log_model(
                name=registered,
                python_model=str(PYFUNC_MODEL_FILE),  # a path: MLflow "models from code", no object is pickled
                artifacts=artifacts,
                model_config=model_config,
                signature=motion_signature(),
                pip_requirements=_requirements(),  # explicit: inferring them would load the model in a subprocess
                metadata={"motion": name, "method": artifact.method, "backbone": backbone, "num_frames": artifact.manifest["num_frames"],
                          "height": artifact.manifest["height"], "width": artifact.manifest["width"]},
                registered_model_name=registered,
                tags={"motion": name},
            )
    client = mlflow.MlflowClient()
    version = info.registered_model_version
    for key, value in version_tags.items():
        client.set_model_version_tag(registered, str(version), key, value)
    client.update_model_version(registered, str(version), description=f"{artifact.method} motion '{name}' learnt from {artifact.manifest['source_video']['path']} ({artifact.manifest['train']['steps']} steps, run {run.info.run_id})")
    logger.info("Registered %s version %s (models:/%s@latest)", registered, version, registered)
    return client.get_model_version(registered, str(version))


def register_trained_motion(name: str, artifact: Any, reference: Mapping[str, Any] | None = None) -> Any | None:
    """:func:`register_motion` when an MLflow run is active (and tracking is not suspended, see
    :mod:`motiontune.tracking.health`); a failure is a warning, never raised (the motion is already on disk, and
    tracking must not fail a run)."""
    from motiontune.tracking import health

    try:
        import mlflow

        if health.suspended() is not None or mlflow.active_run() is None:
            return None
        return register_motion(name, artifact, reference)
    except Exception as error:  # noqa: BLE001
        try:
            import mlflow

            logger.warning("MLflow: motion '%s' not registered as %s in %s (%s); the motion itself is saved on disk",
                           name, model_name(name), mlflow.get_registry_uri(), health.describe_error(error))
            # Tracking goes on unless the tracking backend itself is down.
            health.after_failure(f"the registered model {model_name(name)}", error, mlflow.get_tracking_uri())
        except Exception:  # noqa: BLE001
            logger.warning("MLflow: motion '%s' not registered (%s)", name, error)
        return None


def promote(name: str, version: int | str, alias: str = CHAMPION, uri: str | None = None) -> Any:
    """Point ``alias`` of ``motion-<name>`` at ``version`` (``latest`` = the newest); returns that ModelVersion."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if alias.lower() == "latest":
        raise ValueError("'latest' is not settable: MLflow resolves models:/<name>@latest to the newest version by itself")
    client = mlflow.MlflowClient(tracking_uri=uri or tracking_uri(), registry_uri=uri or tracking_uri())
    registered = model_name(name)
    try:
        client.get_registered_model(registered)
    except MlflowException:
        known = sorted(model.name for model in client.search_registered_models() if model.name.startswith(MODEL_PREFIX))
        raise ValueError(f"no registered motion '{registered}' in {client.tracking_uri} (registered: {known})") from None
    if str(version).lower() == "latest":
        version = client.get_model_version_by_alias(registered, "latest").version
    try:
        client.get_model_version(registered, str(version))
    except MlflowException:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{registered}'"))
        raise ValueError(f"'{registered}' has no version {version} (versions: {versions})") from None
    client.set_registered_model_alias(registered, alias, str(version))
    return client.get_model_version(registered, str(version))


def list_motions(uri: str | None = None) -> list[dict[str, Any]]:
    """One row per version of every ``motion-*`` model: name, version, aliases, method, source, run."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri or tracking_uri(), registry_uri=uri or tracking_uri())
    rows = []
    for model in client.search_registered_models():
        if not model.name.startswith(MODEL_PREFIX):
            continue
        versions = sorted(client.search_model_versions(f"name='{model.name}'"), key=lambda v: int(v.version))
        newest = str(versions[-1].version) if versions else None
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        for item in versions:
            aliases = sorted(by_version.get(str(item.version), [])) + (["latest"] if str(item.version) == newest else [])
            rows.append({
                "name": model.name, "version": int(item.version), "aliases": aliases,
                "method": item.tags.get("method", ""), "final_loss": item.tags.get("final_loss", ""),
                "train_steps": item.tags.get("train_steps", ""), "run_id": item.run_id,
            })
    return rows


def resolve_version(uri: str) -> tuple[str, str] | None:
    """``(registered name, version)`` of a ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` URI."""
    import mlflow

    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/([^/]+))", uri.strip())
    if not match:
        return None
    name, alias, suffix = match.groups()
    client = mlflow.MlflowClient()
    if alias is not None:
        return name, str(client.get_model_version_by_alias(name, alias).version)
    if suffix.isdigit():
        return name, suffix
    return name, str(client.get_model_version_by_alias(name, "latest").version)


def registry_prompts(generate: Mapping[str, Any]) -> list[str]:
    """``generate.prompts`` as a list: a list of str, or one str with prompts separated by ``|`` (Kedro's
    ``--params`` splits on commas, so a list of several prompts cannot be written there)."""
    prompts = generate.get("prompts") or []
    if isinstance(prompts, str):
        prompts = prompts.split("|")
    return [str(prompt).strip() for prompt in prompts if str(prompt).strip()]


def generate_with_registered_motion(
    uri: str, prompts: Sequence[str], backbone: Mapping[str, Any], options: Mapping[str, Any]
) -> tuple[str, list[Any]]:
    """Load the motion model at ``uri`` (``models:/motion-<name>@champion``, ``models:/motion-<name>/3``, ...)
    and generate one video per prompt on the configured ``backbone`` (the ``backbone`` parameters).

    ``options``: the ``generate`` settings (seed, steps, guidance_scale, ...). Returns ``(label, videos)``:
    ``label`` is ``<name>/v<version>`` for a registered model (else ``model``), videos are uint8 (F, H, W, 3).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from motiontune.generation.generate import GENERATION_OPTIONS, GenerationConfig

    GenerationConfig.from_params(options)  # unknown or invalid settings fail here, before the model loads
    try:
        resolved = resolve_version(uri)
        # Load the version the alias points at now (the alias may move while we generate).
        model = mlflow.pyfunc.load_model(f"models:/{resolved[0]}/{resolved[1]}" if resolved else uri)
    except MlflowException as error:
        raise ValueError(
            f"{uri}: not found in the MLflow registry at {mlflow.get_tracking_uri()} ({error.message}); "
            "list the registered motions with `motiontune motions`"
        ) from None
    params = {key: options[key] for key in GENERATION_OPTIONS if options.get(key) is not None}
    params.update({
        "backbone": str(backbone["pretrained_model"]),
        "revision": backbone.get("revision"),
        "motion_adapter": backbone.get("motion_adapter"),
        "motion_adapter_revision": backbone.get("motion_adapter_revision"),
        "device": str(backbone.get("device", "auto")),
        "dtype": str(backbone.get("dtype", "float32")),
    })
    videos = model.predict(list(prompts), params={key: value for key, value in params.items() if value is not None})
    if resolved is None:
        return "model", videos
    name, version = resolved
    if mlflow.active_run() is not None:
        mlflow.set_tags({"generate.motion": uri, "generate.motion_model": name, "generate.motion_version": version})
    return f"{name.removeprefix(MODEL_PREFIX)}/v{version}", videos


def registry_generate_problems(generate: Mapping[str, Any]) -> list[str]:
    """Problems with ``generate.motion`` (a model URI, or null) and ``generate.prompts`` (needed with a motion)."""
    problems: list[str] = []
    motion, prompts = generate.get("motion"), generate.get("prompts")
    if motion is None:
        return problems
    if not isinstance(motion, str) or not motion.strip():
        problems.append(f"generate.motion: a registered motion such as models:/motion-<name>@champion (or null), got {motion!r}")
    if prompts is not None and not isinstance(prompts, str) and (
        not isinstance(prompts, Sequence) or not all(isinstance(p, str) and p.strip() for p in prompts)
    ):
        problems.append(f"generate.prompts: a list of non-empty prompts, or one string with prompts separated by '|', got {prompts!r}")
    elif not registry_prompts(generate):
        problems.append("generate.prompts: give the prompts to generate with generate.motion, e.g. generate.prompts=[a fox running in the snow]")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motiontune.tracking.registry", description="Registered motions (MLflow model registry)")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(argv))


def add_commands(commands: Any) -> None:
    """The ``promote`` and ``motions`` subcommands (shared with the ``motiontune`` command)."""
    promote_cmd = commands.add_parser("promote", help="set an alias (default: champion) on a version of motion-<name>")
    promote_cmd.add_argument("name", help="motion name (motion-<name> is the registered model)")
    promote_cmd.add_argument("version", help="version number, or 'latest'")
    promote_cmd.add_argument("--alias", default=CHAMPION)
    promote_cmd.add_argument("--tracking-uri", default=None, help=f"default: $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI}")
    listing = commands.add_parser("motions", help="list registered motions, their versions and aliases")
    listing.add_argument("--tracking-uri", default=None, help=f"default: $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI}")


def run_command(args: argparse.Namespace) -> int:
    if args.command == "promote":
        try:
            item = promote(args.name, args.version, args.alias, args.tracking_uri)
        except ValueError as error:
            print(f"error: {error}")
            return 1
        print(f"{item.name} version {item.version} is now @{args.alias} (models:/{item.name}@{args.alias})")
        return 0
    if args.command == "motions":
        rows = list_motions(args.tracking_uri)
        if not rows:
            print(f"no registered motions in {args.tracking_uri or tracking_uri()}")
        for row in rows:
            print(f"{row['name']:<28} v{row['version']:<4} {','.join(row['aliases']):<18} {row['method']:<18} steps={row['train_steps']:<5} loss={row['final_loss'][:8]:<8} run={row['run_id']}")
        return 0
    raise ValueError(f"unknown command {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
