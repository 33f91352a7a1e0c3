"""Kedro project settings."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

CONFIG_LOADER_CLASS = OmegaConfigLoader
# `oc.env` lets conf/base/mlflow.yml read MLFLOW_TRACKING_URI (Kedro only enables it for credentials).
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"oc.env": oc.env},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
}

from motiontune.pipelines.hooks import ParameterCheckHooks, ResilientMlflowHook, RunIsolationHooks  # noqa: E402

# kedro-mlflow's hook is registered below, wrapped, instead of by its entry point: an unreachable or locked
# tracking backend then costs one warning, not the run (see ResilientMlflowHook). Kedro matches the
# distribution's metadata name, `kedro_mlflow` for kedro-mlflow 2.0; both spellings are listed.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow", "kedro_mlflow")

# pluggy calls hooks last to first: parameters are checked before the MLflow run starts.
HOOKS = (ResilientMlflowHook(), RunIsolationHooks(), ParameterCheckHooks())
