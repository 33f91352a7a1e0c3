"""One builder for every settings dataclass made from a section of the parameters (``conf/base/parameters_*.yml``).

A settings class is a (frozen) dataclass whose fields are the section's keys. :func:`build_section` rejects
unknown keys (one line per key, naming the closest known one), builds nested settings dataclasses from nested
mappings (and tuples of them from lists of mappings), turns YAML lists into tuples where the field is a tuple (so
frozen settings stay hashable), and then asks the built object for its range problems: a settings class may
define ``problems(self) -> list[str]`` (each line ``key: what is wrong``), and all of them are raised together.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from motiontune.errors import UserError
from motiontune.known_keys import unknown_key_problems

Settings = TypeVar("Settings")


class SectionError(UserError, ValueError):
    """A parameters section has unknown keys or invalid values; the message has one line per problem."""


def build_section(
    settings_class: type[Settings], values: Mapping[str, Any] | None, section: str, other_keys: Iterable[str] = ()
) -> Settings:
    """``settings_class`` built from the mapping ``values`` of the parameters section named ``section``.

    Keys that are not fields raise :class:`SectionError` (``<section>.<key>: unknown key (did you mean ...)``),
    except ``other_keys``: keys of the same section that other settings read (and check); missing keys take the
    field defaults; after construction, ``problems()`` (if defined) lists range errors, raised as
    ``<section>.<line>``.
    """
    names = [field.name for field in dataclasses.fields(settings_class) if field.init]
    other_keys = set(other_keys)
    unknown = unknown_key_problems(section, dict(values or {}), [*names, *other_keys])
    if unknown:
        raise SectionError("; ".join(unknown))
    values = {key: value for key, value in dict(values or {}).items() if key not in other_keys or key in names}
    try:
        hints = typing.get_type_hints(settings_class)
    except NameError:  # an annotation names a type imported for type checking only: no nesting to resolve
        hints = {}
    kwargs = {key: _converted(hints.get(key), value, f"{section}.{key}") for key, value in values.items()}
    try:
        settings = settings_class(**kwargs)
    except TypeError as error:
        raise SectionError(f"{section}: {error}") from None
    problems = settings.problems() if hasattr(settings, "problems") else []
    if problems:
        raise SectionError("; ".join(f"{section}.{problem}" for problem in problems))
    return settings


def _converted(hint: Any, value: Any, section: str) -> Any:
    nested = _settings_class(hint)
    if nested is not None and (value is None or isinstance(value, Mapping)):
        return build_section(nested, value, section)
    if isinstance(value, list):  # YAML lists become tuples: settings are frozen and hashable
        nested_item = _settings_class(_tuple_item(hint))
        if nested_item is not None:
            return tuple(build_section(nested_item, entry, f"{section}[{index}]") for index, entry in enumerate(value))
        return tuple(tuple(entry) if isinstance(entry, list) else entry for entry in value)
    return value


def _settings_class(hint: Any) -> type | None:
    """The dataclass in a hint such as ``Stage`` or ``Stage | None``."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _tuple_item(hint: Any) -> Any:
    """The item type of ``tuple[X, ...]`` (also inside a union); None otherwise."""
    for candidate in (hint, *typing.get_args(hint)):
        args = typing.get_args(candidate) if typing.get_origin(candidate) is tuple else ()
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None
