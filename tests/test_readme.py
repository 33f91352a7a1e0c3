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


def _readme_number(value: float) -> str:
    """0.05 -> '5e-2', as the method table writes learning rates."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def test_the_method_table_states_each_methods_config_defaults():
    """The README's method table is checked against the Config dataclasses (the single source of the defaults):
    each row names its method's training steps, learning rate and weight decay, and its inference guidance, steps
    and noise init (with the blend strength where it blends)."""
    from motiontune.methods.base import method_class, method_names

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {match.group(1): match.group(0) for match in re.finditer(r"^\| `([a-z_]+)` \|.*$", text, flags=re.MULTILINE)}
    for name in method_names():
        config, row = method_class(name).Config(), rows[name]
        training, inference = config.training, config.inference
        expected = [
            f"lr {_readme_number(training.learning_rate)}",
            f"weight decay {_readme_number(training.weight_decay)}",
            f"{training.steps} steps",
            f"DDIM {inference.steps} steps",
            f"guidance {inference.guidance_scale:g}",
        ]
        if inference.noise_init == "blend":
            expected.append(f"`blend` {inference.blend_strength:g}")
        else:
            expected.append(inference.noise_init)
        assert [phrase for phrase in expected if phrase not in row] == [], name
