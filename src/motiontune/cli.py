"""The project's Kedro commands: ``kedro run`` (and ``python -m motiontune``) is Kedro's own run command, except
that a user's mistake ends with its message.

Kedro loads a project's ``<package>.cli`` and lets its ``cli`` group override the built-in commands; its
``find_run_command`` (used by ``__main__.py``) takes this module's ``run``. A :class:`~motiontune.errors.UserError`
raised anywhere in the run (the parameter check before it, a node, a dataset), or one behind the exception Kedro
re-raises, is reported as its message alone on stderr, exit status 2 (:data:`motiontune.errors.EXIT_CODE`);
``--verbose`` or ``MOTIONTUNE_VERBOSE=1`` prints the full traceback instead. Any other exception propagates as
before, with its traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from motiontune.errors import VERBOSE_VARIABLE, report_user_error, verbose_requested


@click.group(name="motiontune")
def cli() -> None:
    """Project commands of motiontune."""


class UserErrorsAsMessages(click.Command):
    """A command that ends a :class:`~motiontune.errors.UserError` with its message and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            status = report_user_error(error, sys.stderr, verbose=bool(ctx.params.get("verbose")) or verbose_requested())
            if status is None:
                raise  # a programming error: its traceback, as Kedro shows it
            ctx.exit(status)


def _run(verbose: bool, **options: Any) -> Any:
    return kedro_run.callback(**options)


run = UserErrorsAsMessages(
    name="run",
    callback=_run,
    params=[
        *kedro_run.params,
        click.Option(["--verbose"], is_flag=True, help=f"On a user error, print the full traceback, not only its message (or set {VERBOSE_VARIABLE}=1)."),
    ],
    help=kedro_run.help,
    short_help=kedro_run.short_help,
    context_settings=kedro_run.context_settings,
)
cli.add_command(run)
