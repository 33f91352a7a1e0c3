"""Write a file so that it is either absent, the old version, or complete: never half-written.

The content goes to a temporary sibling (same filesystem, so the rename is atomic) which is renamed onto the
final name only after the writer returned; a crash or an exception leaves no file under the final name and
removes the temporary one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], Any], suffix: str = ".tmp") -> Path:
    """Call ``write(temporary_path)`` and rename the result onto ``path``; returns ``path``.

    ``suffix`` is the temporary file's ending, for writers that pick the format from it (``np.savez``).
    The file gets the permissions a plain ``open(path, "w")`` would give (``mkstemp`` makes it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def replace_folder(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put the folder ``new`` at ``target`` by renames, the old folder kept until the new one is in place.

    A crash leaves either the old folder at ``target`` or the new one (the old one then as ``<target>.previous``).
    """
    new, target = Path(new), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = target.with_name(target.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    shutil.move(str(new), str(target))
    shutil.rmtree(previous, ignore_errors=True)
