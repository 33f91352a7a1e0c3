"""Project hooks: fail fast on invalid parameters, before any stage runs."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from motiontune.parameters import check_parameters


class ParameterCheckHooks:
    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        check_parameters(catalog.load("parameters"))
