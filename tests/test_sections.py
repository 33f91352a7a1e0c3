"""The one builder of settings dataclasses from parameter sections: unknown keys, nesting, tuples, range errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from motiontune.sections import SectionError, build_section


@dataclass(frozen=True)
class Stage:
    steps: int = 10
    sizes: tuple[int, ...] = (1, 2)

    def problems(self) -> list[str]:
        return [] if self.steps >= 0 else [f"steps: must be >= 0, got {self.steps}"]


@dataclass(frozen=True)
class Case:
    family: str
    colour: str | None = None


@dataclass(frozen=True)
class Run:
    seed: int = 0
    first: Stage = Stage()
    second: Stage | None = None
    cases: tuple[Case, ...] = ()
    options: dict = field(default_factory=dict)


def test_defaults_nesting_and_tuples():
    run = build_section(Run, {"first": {"sizes": [3, 4]}, "second": None, "cases": [{"family": "translate"}], "options": {"a": [1]}}, "run")
    assert run.first == Stage(steps=10, sizes=(3, 4))
    assert run.second == Stage()  # null nested section = its defaults
    assert run.cases == (Case("translate"),)
    assert run.options == {"a": [1]}  # a mapping field stays a mapping
    assert build_section(Run, None, "run") == Run()
    hash(run.first)  # frozen settings stay hashable: lists became tuples


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sede": 1}, "run.sede: unknown key (did you mean 'seed'?)"),
        ({"first": {"stpes": 1}}, "run.first.stpes: unknown key (did you mean 'steps'?)"),
        ({"cases": [{"family": "x"}, {"familly": "y"}]}, "run.cases[1].familly: unknown key (did you mean 'family'?)"),
        ({"cases": [{"colour": "red"}]}, "run.cases[0]: "),  # a required field is missing
        ({"first": {"steps": -1}}, "run.first.steps: must be >= 0, got -1"),
    ],
)
def test_every_mistake_names_its_key(values, message):
    with pytest.raises(SectionError) as error:
        build_section(Run, values, "run")
    assert str(error.value).startswith(message)
    assert isinstance(error.value, ValueError)  # callers that catch ValueError still do


@pytest.mark.parametrize(
    ("module", "name", "section"),
    [
        ("motiontune.io.references", "IngestSettings", "ingest"),
        ("motiontune.sampling.features", "EncodeSettings", "encode"),
        ("motiontune.benchmark", "BenchmarkSettings", "benchmark"),
    ],
)
def test_the_shipped_sections_are_the_defaults_of_their_settings(project_root, module, name, section):
    """Every key of ``conf/base/parameters_<section>.yml`` is a field of its settings class, every field a key, and
    each default is the shipped value (nested sections and list entries too), so YAML and dataclass cannot drift."""
    import dataclasses
    import importlib

    import yaml

    settings_class = getattr(importlib.import_module(module), name)
    values = yaml.safe_load((project_root / "conf" / "base" / f"parameters_{section}.yml").read_text(encoding="utf-8"))[section]
    default, shipped = settings_class(), settings_class.from_params(values)

    def same(values, default, shipped, where):
        assert sorted(values) == sorted(field.name for field in dataclasses.fields(default)), where
        for key, value in values.items():
            assert getattr(shipped, key) == getattr(default, key), f"{where}.{key}"
            nested = getattr(default, key)
            if dataclasses.is_dataclass(nested):
                same(value, nested, getattr(shipped, key), f"{where}.{key}")
            elif isinstance(nested, tuple) and nested and dataclasses.is_dataclass(nested[0]):
                assert len(value) == len(nested), f"{where}.{key}"
                for index, (entry, item) in enumerate(zip(value, nested, strict=True)):
                    same(entry, item, getattr(shipped, key)[index], f"{where}.{key}[{index}]")

    same(values, default, shipped, section)
    assert shipped == default


def test_the_ingest_rules_keep_the_video_rules_defaults():
    from motiontune.io.validation import VideoLimits, VideoRules

    assert VideoLimits().rules(min_frames=8) == VideoRules(min_frames=8)
