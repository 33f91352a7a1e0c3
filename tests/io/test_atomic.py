"""Atomic writes: complete file or none, with the permissions of a plain open()."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from motiontune.io.atomic import write_atomically


def test_written_file_gets_umask_permissions_not_mkstemp_0600(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = write_atomically(tmp_path / "sub" / "out.txt", lambda p: p.write_text("done"))
    finally:
        os.umask(previous)
    assert path.read_text() == "done"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")

    def crash(temporary: Path) -> None:
        temporary.write_text("half")
        raise KeyboardInterrupt  # BaseException too: Ctrl-C in the middle of a write

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, crash)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
