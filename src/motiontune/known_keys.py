"""Unknown configuration keys are errors: one line per key, naming the closest known key (a typo such as
``train.stpes`` fails before any work starts instead of being silently ignored)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_key_problems(section: str, keys: Iterable[object], known: Iterable[str]) -> list[str]:
    """``<section>.<key>: unknown key (did you mean '<closest known key>'?)`` for each of ``keys`` not in
    ``known``; with no close match the line lists the known keys instead."""
    names = sorted({str(name) for name in known})
    problems = []
    for key in keys:
        if str(key) in names:
            continue
        closest = difflib.get_close_matches(str(key), names, n=1)
        hint = f"did you mean '{closest[0]}'?" if closest else f"known keys: {', '.join(names)}"
        problems.append(f"{section}.{key}: unknown key ({hint})")
    return problems


def check_known_keys(section: str, keys: Iterable[object], known: Iterable[str]) -> None:
    """Raise ``ValueError`` (one line, every unknown key) when ``keys`` has a key not in ``known``."""
    problems = unknown_key_problems(section, keys, known)
    if problems:
        raise ValueError("; ".join(problems))
