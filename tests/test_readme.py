"""README and CI tell the same story: CI runs the README's test command, and the documented commands exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick_start)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    install_and_run, install_and_test = readme_commands()
    assert install_and_run.endswith("kedro run --pipelines=customize")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install_and_test in ci_lines


def test_documented_pipelines_are_registered():
    from motiontune.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("ingest", "encode", "train", "generate", "evaluate"):
        assert f"| `{name}` |" in text and name in pipelines
    assert [n.name for n in pipelines["customize"].nodes] == [
        "ingest_references", "encode_references", "train_motions", "generate_videos", "evaluate_motions",
    ]
