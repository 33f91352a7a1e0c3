"""The base of every error that is the user's to fix, and how a command reports one.

A :class:`UserError` is a bad input, a bad parameter, an artifact or backbone that does not fit, or a resource
that cannot be reached: its message says what to change, so a command ends with that message alone (exit status
:data:`EXIT_CODE`), not with a traceback. Anything else is a programming error and keeps its traceback.
``MOTIONTUNE_VERBOSE=1`` (or a command's ``--verbose``) shows the traceback of a user error too.

The lowest layer: it imports nothing from motiontune, so every package can raise its errors from it.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import TextIO

EXIT_CODE = 2  # as a usage error: the command was given something it cannot work with
VERBOSE_VARIABLE = "MOTIONTUNE_VERBOSE"


class UserError(Exception):
    """An error whose message tells the user what to fix (each subclass keeps its own built-in base too, so
    ``except ValueError`` and the like still catch it)."""


def find_user_error(error: BaseException | None) -> UserError | None:
    """``error`` itself if it is a :class:`UserError`, else the first one it was raised from or while handling
    (``__cause__``, then ``__context__``, depth first), else None. A framework may wrap or re-raise ours."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UserError):
            return current
        pending += [current.__context__, current.__cause__]  # popped last first: the explicit cause wins
    return None


def verbose_requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``MOTIONTUNE_VERBOSE`` is set to anything but empty, 0, false, no or off."""
    value = (os.environ if environ is None else environ).get(VERBOSE_VARIABLE, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def report_user_error(error: BaseException, stream: TextIO, verbose: bool = False) -> int | None:
    """Report ``error`` on ``stream`` if a :class:`UserError` is behind it, and return the exit status to end with.

    The report is the user error's message alone; with ``verbose``, the full traceback of ``error`` (which ends
    in that message). Returns None, writing nothing, for any other error: the caller re-raises it.
    """
    user_error = find_user_error(error)
    if user_error is None:
        return None
    if verbose:
        stream.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    else:
        message = str(user_error) or type(user_error).__name__
        stream.write(message if message.endswith("\n") else message + "\n")
    stream.flush()
    return EXIT_CODE


def exit_status_of(command: Callable[[], int], stream: TextIO | None = None) -> int:
    """Run ``command`` (a script's or a command's main) and return its exit status; a :class:`UserError` behind
    an exception it raises ends it with the message alone (see :func:`report_user_error`, ``MOTIONTUNE_VERBOSE``)
    and :data:`EXIT_CODE`. Any other exception propagates with its traceback."""
    try:
        return command()
    except Exception as error:
        status = report_user_error(error, sys.stderr if stream is None else stream, verbose_requested())
        if status is None:
            raise
        return status
