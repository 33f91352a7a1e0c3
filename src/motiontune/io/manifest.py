"""The video manifest: which reference videos to learn from and what to generate.

YAML form (``data/01_raw/manifest.yml``)::

    videos:
      - name: ball_right          # [a-z0-9_-]+, unique
        path: ball_right.mp4      # relative to the manifest's folder (no ../ out of it), or absolute;
                                  # a video file or a folder of frames
        prompt: "a red ball rolling to the right on a gray floor"
        train_prompt: null        # optional: overrides the automatic simplified prompt
        target_prompts:           # prompts to generate with the learned motion
          - "a blue cube sliding on a wooden table"
        fps: null                 # optional; the frame rate of a folder of frames

CSV form: one row per video with the same columns; ``target_prompts`` is one
cell with prompts separated by ``|``; empty cells mean "not given".

This module checks structure only. Whether the files decode, have enough frames
or a non-empty prompt is checked per file by :mod:`motiontune.io.validation`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from motiontune.errors import UserError

NAME_PATTERN = re.compile(r"[a-z0-9_-]+")
ENTRY_KEYS: tuple[str, ...] = ("name", "path", "prompt", "train_prompt", "target_prompts", "fps")
CSV_PROMPT_SEPARATOR = "|"


class ManifestError(ValueError, UserError):
    """The manifest's structure is wrong; the message names the entry and the rule."""


@dataclass(frozen=True)
class ManifestEntry:
    """One reference video of the manifest, with ``path`` made absolute."""

    name: str
    path: Path
    prompt: str
    train_prompt: str | None
    target_prompts: tuple[str, ...]
    fps: float | None


def _is_blank(value: Any) -> bool:
    """None, NaN (an empty pandas cell) or a whitespace-only string."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _entry_label(raw: Mapping[str, Any], position: int) -> str:
    name = raw.get("name")
    if isinstance(name, str) and name:
        return f"manifest entry '{name}'"
    return f"manifest entry #{position + 1}"


def _parse_target_prompts(value: Any, label: str, from_csv: bool) -> tuple[str, ...]:
    if from_csv and isinstance(value, str):
        value = value.split(CSV_PROMPT_SEPARATOR)
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
        raise ManifestError(f"{label}: target_prompts must be a non-empty list of non-empty strings")
    prompts = []
    for prompt in value:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ManifestError(f"{label}: target_prompts must be a non-empty list of non-empty strings")
        prompts.append(prompt.strip())
    return tuple(prompts)


def _parse_entry(raw: Any, position: int, base_dir: Path, from_csv: bool) -> ManifestEntry:
    if not isinstance(raw, Mapping):
        raise ManifestError(f"manifest entry #{position + 1}: must be a mapping of {', '.join(ENTRY_KEYS)}")
    label = _entry_label(raw, position)
    unknown = [str(key) for key in raw if key not in ENTRY_KEYS]
    if unknown:
        raise ManifestError(f"{label}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(ENTRY_KEYS)})")

    name = raw.get("name")
    if _is_blank(name):
        raise ManifestError(f"{label}: missing name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ManifestError(f"{label}: name must match [a-z0-9_-]+, got {name!r}")

    path = raw.get("path")
    if _is_blank(path):
        raise ManifestError(f"{label}: missing path")
    if not isinstance(path, (str, os.PathLike)):
        raise ManifestError(f"{label}: path must be a string, got {path!r}")
    # abspath also folds "..", so messages show a clean path.
    absolute_path = Path(os.path.abspath(Path(base_dir) / Path(path).expanduser()))
    if not Path(path).expanduser().is_absolute() and not absolute_path.is_relative_to(os.path.abspath(base_dir)):
        # A shared manifest must not reach files outside its folder by "../"; an absolute path says it means to.
        raise ManifestError(
            f"{label}: path '{path}' points outside the manifest folder {base_dir} "
            "(write an absolute path to use a file elsewhere)"
        )

    prompt = raw.get("prompt")
    if from_csv and _is_blank(prompt):
        prompt = ""  # an empty CSV cell is an empty prompt: reported per file by validation
    if prompt is None:
        raise ManifestError(f"{label}: missing prompt")
    if not isinstance(prompt, str):
        raise ManifestError(f"{label}: prompt must be a string, got {prompt!r}")

    train_prompt = raw.get("train_prompt")
    if _is_blank(train_prompt):
        train_prompt = None  # blank means: derive it from the prompt
    elif not isinstance(train_prompt, str):
        raise ManifestError(f"{label}: train_prompt must be a string or null, got {train_prompt!r}")

    target_prompts = _parse_target_prompts(raw.get("target_prompts"), label, from_csv)

    fps = raw.get("fps")
    if _is_blank(fps):
        fps = None
    else:
        try:
            # bool is an int subclass; "fps: yes" is a mistake, not 1 fps.
            fps = None if isinstance(fps, bool) else float(fps)
        except (TypeError, ValueError):
            fps = None
        if fps is None or not math.isfinite(fps) or fps <= 0:
            raise ManifestError(f"{label}: fps must be a positive number or null, got {raw.get('fps')!r}")

    return ManifestEntry(
        name=name,
        path=absolute_path,
        prompt=prompt.strip(),
        train_prompt=train_prompt.strip() if train_prompt else None,
        target_prompts=target_prompts,
        fps=fps,
    )


def _normalise_select(select: Sequence[str] | str | None) -> list[str] | None:
    """None keeps all; a string is a comma-separated list (what a CLI --params gives)."""
    if select is None:
        return None
    if isinstance(select, str):
        select = [part.strip() for part in select.split(",") if part.strip()]
    names = [str(name) for name in select]
    if not names:
        raise ManifestError("manifest select is empty: use null to keep all videos")
    return names


def load_manifest(
    manifest: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    base_dir: str | os.PathLike[str],
    select: Sequence[str] | str | None = None,
) -> list[ManifestEntry]:
    """Validate a parsed manifest and return its entries in manifest order.

    ``manifest`` is the parsed YAML (a mapping with a ``videos`` list) or
    CSV-shaped rows (a list of dicts, or a DataFrame) where ``target_prompts``
    is a ``|``-separated string. Relative paths are resolved against
    ``base_dir`` (the manifest's folder). ``select`` keeps only those names, in
    manifest order (None keeps all; a string is split on commas).

    Raises ManifestError "manifest entry 'x': <rule>" for a missing, malformed
    or duplicate name, a missing path, a missing or non-string prompt, or
    target_prompts that is not a non-empty list of non-empty strings; and for
    unknown names in ``select``. An empty prompt passes here on purpose: the
    per-file validation reports it together with the other file problems.
    """
    if hasattr(manifest, "to_dict") and not isinstance(manifest, Mapping):
        manifest = manifest.to_dict(orient="records")  # a pandas DataFrame from a CSV dataset
    from_csv = not isinstance(manifest, Mapping)
    if isinstance(manifest, Mapping):
        unknown = [str(key) for key in manifest if key != "videos"]
        if unknown:
            raise ManifestError(f"manifest: unknown top-level key(s) {', '.join(unknown)} (expected 'videos')")
        rows = manifest.get("videos")
    else:
        rows = manifest
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise ManifestError("manifest: 'videos' must be a list of entries")
    if not rows:
        raise ManifestError("manifest: lists no videos")

    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for position, raw in enumerate(rows):
        entry = _parse_entry(raw, position, Path(base_dir), from_csv)
        if entry.name in seen:
            raise ManifestError(f"manifest entry '{entry.name}': duplicate name")
        seen.add(entry.name)
        entries.append(entry)

    wanted = _normalise_select(select)
    if wanted is None:
        return entries
    unknown_names = [name for name in wanted if name not in seen]
    if unknown_names:
        known = ", ".join(entry.name for entry in entries)
        raise ManifestError(f"manifest: unknown video name(s) {', '.join(unknown_names)} in select (known: {known})")
    return [entry for entry in entries if entry.name in set(wanted)]
