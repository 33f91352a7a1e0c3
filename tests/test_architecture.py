"""The library core never imports Kedro, so it works from a notebook or another orchestrator."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "src" / "motiontune"
KEDRO_ALLOWED = {"pipelines", "settings.py", "pipeline_registry.py", "cli.py", "__main__.py"}


def test_core_modules_do_not_import_kedro():
    offenders = []
    for path in CORE.rglob("*.py"):
        relative = path.relative_to(CORE)
        if relative.parts[0] in KEDRO_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{relative}: {name}" for name in names if name.split(".")[0] in ("kedro", "kedro_datasets", "kedro_mlflow")]
    assert offenders == []
