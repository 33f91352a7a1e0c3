"""A user's mistake ends in its message: ``kedro run`` reports a UserError as its message alone on stderr with exit
status 2; ``--verbose`` / ``MOTIONTUNE_VERBOSE=1`` show the traceback; programming errors keep theirs (issue 16,
item 8)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from motiontune.errors import EXIT_CODE, UserError, find_user_error, report_user_error, verbose_requested
from test_end_to_end import copy_project, kedro


def _user_error_classes() -> list[tuple[type, type]]:
    from motiontune.backbone.loading import BackboneError
    from motiontune.executors import ExecutorError
    from motiontune.io.manifest import ManifestError
    from motiontune.io.validation import VideoValidationError
    from motiontune.io.video import VideoInputError
    from motiontune.methods.artifact import ArtifactError
    from motiontune.metrics.clip_scores import ClipModelNotFoundError
    from motiontune.metrics.fid import InsufficientSamplesError
    from motiontune.parameters import ParameterError
    from motiontune.sampling.latents import PromptError
    from motiontune.world.motions import WorldGeometryError
    from motiontune.world_models.benchmark import WorldBenchmarkError

    return [
        (ParameterError, ValueError), (BackboneError, ValueError), (ArtifactError, ValueError),
        (VideoInputError, ValueError), (VideoValidationError, ValueError), (ManifestError, ValueError),
        (PromptError, ValueError), (ExecutorError, RuntimeError), (ClipModelNotFoundError, FileNotFoundError),
        (InsufficientSamplesError, ValueError), (WorldGeometryError, ValueError),
        (WorldBenchmarkError, ValueError),
    ]


def test_every_user_facing_error_is_a_user_error_and_keeps_its_builtin_base():
    for error_class, builtin in _user_error_classes():
        assert issubclass(error_class, UserError), error_class
        assert issubclass(error_class, builtin), error_class  # ``except ValueError`` callers still catch it


def _raise_chained(inner: BaseException, outer: type[BaseException], explicit: bool) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as error:
            if explicit:
                raise outer("wrapped") from error
            raise outer("while handling")  # noqa: B904 - the implicit __context__ is what is tested
    except BaseException as error:  # noqa: BLE001 - the chained exception is the test's subject
        return error
    raise AssertionError("unreachable")


def test_the_user_error_is_found_behind_wrapping_and_re_raising():
    mistake = UserError("bad video")
    assert find_user_error(mistake) is mistake
    assert find_user_error(_raise_chained(mistake, RuntimeError, explicit=True)) is mistake
    assert find_user_error(_raise_chained(UserError("bad video"), KeyError, explicit=False)).args == ("bad video",)
    twice = _raise_chained(_raise_chained(mistake, ValueError, explicit=True), RuntimeError, explicit=False)
    assert find_user_error(twice) is mistake
    assert find_user_error(RuntimeError("a bug")) is None and find_user_error(None) is None
    looped = RuntimeError("a")
    looped.__context__ = ValueError("b")
    looped.__context__.__context__ = looped  # a cycle must not hang the walk
    assert find_user_error(looped) is None


def test_a_user_error_is_reported_as_its_message_alone_or_with_its_traceback_when_verbose():
    error = _raise_chained(UserError("data/01_raw/x.mp4: unreadable video (empty file)"), RuntimeError, explicit=True)
    stream = io.StringIO()
    assert report_user_error(error, stream) == EXIT_CODE == 2
    assert stream.getvalue() == "data/01_raw/x.mp4: unreadable video (empty file)\n"

    stream = io.StringIO()
    assert report_user_error(error, stream, verbose=True) == 2
    assert stream.getvalue().startswith("Traceback (most recent call last):")
    assert "UserError: data/01_raw/x.mp4: unreadable video (empty file)" in stream.getvalue()

    stream = io.StringIO()
    assert report_user_error(RuntimeError("a bug"), stream, verbose=True) is None and stream.getvalue() == ""


@pytest.mark.parametrize(("value", "verbose"), [(None, False), ("", False), ("0", False), ("false", False), ("off", False), ("1", True), ("yes", True), ("TRUE", True)])
def test_verbose_is_read_from_motiontune_verbose(value, verbose):
    environ = {} if value is None else {"MOTIONTUNE_VERBOSE": value}
    assert verbose_requested(environ) is verbose


def _node_raising(error: BaseException):
    """A fake ``kedro run`` body: a real Kedro runner running one node that raises ``error``."""
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline, node
    from kedro.runner import SequentialRunner

    def failing_node():
        raise error

    def run(**options):
        SequentialRunner().run(Pipeline([node(failing_node, None, "out", name="failing_node")]), DataCatalog())

    return run


def _invoke_run(monkeypatch: pytest.MonkeyPatch, error: BaseException, *args: str):
    from kedro.framework.cli.project import run as kedro_run

    from motiontune import cli

    monkeypatch.setattr(kedro_run, "callback", _node_raising(error))
    return CliRunner().invoke(cli.cli, ["run", *args])


def test_run_ends_a_user_error_raised_in_a_node_with_its_message_and_status_2(monkeypatch):
    from motiontune.io.video import VideoInputError

    monkeypatch.delenv("MOTIONTUNE_VERBOSE", raising=False)
    result = _invoke_run(monkeypatch, VideoInputError("data/01_raw/x.mp4", "unreadable video (empty file)"))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == "data/01_raw/x.mp4: unreadable video (empty file)"
    assert "Traceback" not in result.output


@pytest.mark.parametrize("how", ["--verbose", "MOTIONTUNE_VERBOSE"])
def test_verbose_run_shows_the_traceback_of_a_user_error(monkeypatch, how):
    from motiontune.io.video import VideoInputError

    monkeypatch.delenv("MOTIONTUNE_VERBOSE", raising=False)
    if how == "MOTIONTUNE_VERBOSE":
        monkeypatch.setenv("MOTIONTUNE_VERBOSE", "1")
    result = _invoke_run(monkeypatch, VideoInputError("data/01_raw/x.mp4", "unreadable video (empty file)"), *([how] if how == "--verbose" else []))
    assert result.exit_code == 2, result.output
    assert "Traceback (most recent call last):" in result.stderr and "in failing_node" in result.stderr
    assert result.stderr.rstrip().endswith("VideoInputError: data/01_raw/x.mp4: unreadable video (empty file)")


def test_a_programming_error_in_a_node_keeps_its_traceback(monkeypatch):
    result = _invoke_run(monkeypatch, RuntimeError("a bug in a node"))
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError) and str(result.exception) == "a bug in a node"
    assert result.exc_info[2] is not None  # propagates with its traceback, as Kedro's CLI shows it


@pytest.mark.slow
def test_kedro_run_ends_a_bad_parameter_with_its_message_and_status_2(project_root, tmp_path, monkeypatch):
    project = copy_project(project_root, tmp_path / "project")
    monkeypatch.delenv("MOTIONTUNE_VERBOSE", raising=False)
    result = kedro(project, "--params=train.method=nope")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr.splitlines()[-2:] == [
        "invalid parameters:",
        "  train.method: 'nope' is not one of ['motion_embeddings', 'motiondirector', 'motionmatcher', 'vmc']",
    ]
    assert "Traceback" not in result.stdout + result.stderr

    monkeypatch.setenv("MOTIONTUNE_VERBOSE", "1")
    verbose = kedro(project, "--params=train.method=nope")
    assert verbose.returncode == 2
    assert "Traceback (most recent call last):" in verbose.stderr and "check_parameters" in verbose.stderr


@pytest.mark.slow
def test_python_m_motiontune_ends_a_bad_video_with_its_message_and_status_2(project_root, tmp_path, monkeypatch):
    project = copy_project(project_root, tmp_path / "project")
    manifest_path = project / "data/01_raw/manifest.yml"
    manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    manifest["videos"] = [dict(manifest["videos"][0], name="broken", path="broken.mp4")]
    manifest_path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    (project / "data/01_raw/broken.mp4").write_bytes(b"")
    monkeypatch.delenv("MOTIONTUNE_VERBOSE", raising=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "200"})
    result = subprocess.run([sys.executable, "-m", "motiontune", "--pipelines=ingest"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr.splitlines()[-2:] == ["1 problem with the reference videos:", "data/01_raw/broken.mp4: unreadable video (empty file)"]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (project / "data/02_intermediate").exists() or not any((project / "data/02_intermediate").iterdir())


def test_the_motiontune_command_ends_a_user_error_in_its_message(tmp_path, capsys):
    from motiontune.command_line import main

    config = tmp_path / "backbone.yml"
    config.write_text("tiny_backbone:\n  channels: 3\n", encoding="utf-8")
    assert main(["build-tiny-backbone", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("tiny_backbone.channels: unknown key") and "Traceback" not in error
