"""The packages import in one direction: each layer may import only the layers listed before it.

The graph is read from the source (every ``import`` and ``from ... import``, including the ones inside
functions, since a function-level import is how a cycle usually hides), so it holds without importing anything.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "src" / "motiontune"

# Lowest first. A top-level name is a package (a folder) or a module (``name.py``) of ``motiontune``.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "known_keys", "sections"),  # shared by everyone: the user-error base, the unknown-key check, the section builder
    ("io",),  # videos, manifests, validation, prompts, references
    ("backbone",),  # loading and the layout of each backbone family
    ("executors",),  # where jobs run (local | ray); knows a backbone only as a source to load
    ("sampling",),  # DDIM sampling and inversion, latents, noise, the encoded reference features
    ("methods",),  # the four motion methods and their artifacts
    ("training",),  # the training loop, its switches and checkpoints, learn_motion
    ("generation",),  # generating videos with (or without) a learnt motion
    ("metrics",),
    ("world",),  # the model-free simulator
    ("benchmark", "world_models"),  # what trains or measures models on references and on the world
    ("tracking",),  # MLflow runs and the registry
    ("parameters", "command_line"),
    ("pipelines", "pipeline_registry", "settings", "cli", "__main__"),  # Kedro
)
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path, core: Path = CORE) -> str:
    parts = list(path.relative_to(core.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, core: Path = CORE) -> set[str]:
    """Every ``motiontune`` name this file imports (``from a import b`` counts ``a`` and ``a.b``)."""
    module = _module_name(path, core)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Imports under ``if TYPE_CHECKING:`` name types for annotations only; nothing imports them at run time.
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING") for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "motiontune"}


def _graph(core: Path = CORE) -> dict[str, set[str]]:
    paths = {_module_name(path, core): path for path in core.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in paths.items():
        graph[name] |= {target for target in _imports(path, core) if target in paths and target != name}
    return graph


def _against_the_order(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{source} (layer {LAYER_OF[_top(source)]}) imports {target}"
        for source, targets in sorted(graph.items())
        if _top(source) in LAYER_OF
        for target in sorted(targets)
        if _top(target) in LAYER_OF and LAYER_OF[_top(target)] > LAYER_OF[_top(source)]
    ]


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_top_level_package_has_a_layer():
    names = {path.stem if path.is_file() else path.name for path in CORE.iterdir() if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists())}
    assert sorted(names - set(LAYER_OF) - {"__init__"}) == []


def test_no_import_goes_against_the_layer_order():
    assert _against_the_order(_graph()) == []


def test_the_module_import_graph_has_no_cycle():
    assert _cycles(_graph()) == []


def _fake_core(tmp_path: Path, files: dict[str, str]) -> Path:
    core = tmp_path / "motiontune"
    for name, source in {"__init__.py": "", **files}.items():
        (core / name).parent.mkdir(parents=True, exist_ok=True)
        (core / name).write_text(source, encoding="utf-8")
    return core


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import motiontune.io.video\n", {"motiontune.io.video"}),
        ("from motiontune.io import video\n", {"motiontune.io", "motiontune.io.video"}),
        ("def f():\n    from .video import read_video\n", {"motiontune.io.video", "motiontune.io.video.read_video"}),
        ("if TYPE_CHECKING:\n    from motiontune.io.video import Clip\nimport motiontune.io.atomic\n", {"motiontune.io.atomic"}),
    ],
)
def test_the_reader_sees_every_kind_of_import(tmp_path, source, expected):
    core = _fake_core(tmp_path, {"io/__init__.py": "", "io/probe.py": source})
    assert _imports(core / "io" / "probe.py", core) == expected


def test_a_planted_upward_import_and_a_planted_cycle_are_found(tmp_path):
    core = _fake_core(
        tmp_path,
        {
            "io/__init__.py": "",
            "io/video.py": "def f():\n    from motiontune.metrics.fid import fid_score\n",  # io must not import metrics
            "metrics/__init__.py": "",
            "metrics/fid.py": "from motiontune.io.video import f\n",
        },
    )
    graph = _graph(core)
    assert _against_the_order(graph) == ["motiontune.io.video (layer 1) imports motiontune.metrics.fid"]
    assert _cycles(graph) == ["motiontune.io.video -> motiontune.metrics.fid -> motiontune.io.video"]
