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

from motiontune.pipelines.hooks import ParameterCheckHooks  # noqa: E402

HOOKS = (ParameterCheckHooks(),)
