"""What every ``leadvault`` command shares: one-line errors, loading the app, a unit of work.

Apart from ``leadvault/cli.py`` so that domain packages' commands can import it
without importing the command group that registers them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import Flask
from sqlalchemy.orm import Session

from leadvault import settings as settings_module
from leadvault.settings import Settings, SettingsError


class ConfigProblem(click.ClickException):
    """A bad setting: one line naming the variable, exit code 2."""

    exit_code = 2


# A row id given on the command line. Ids are 32-bit integers on PostgreSQL (as
# ``leadvault.web.ROW_ID_MAX`` for URLs); a larger number overflowed SQLite's driver
# with a traceback, it is a usage error naming the argument instead (exit code 2).
ROW_ID = click.IntRange(1, 2**31 - 1)


class Refused(click.ClickException):
    """The command understood the request but will not do it (exit code 1)."""

    exit_code = 1


def load_settings() -> Settings:
    try:
        return settings_module.load()
    except SettingsError as exc:
        raise ConfigProblem(str(exc)) from None


def load_app(overrides: dict[str, Any] | None = None) -> Flask:
    """The app from the ``LEADVAULT_*`` settings, or the one the caller handed the
    command line as its ``obj`` (tests: ``CliRunner().invoke(cli, args, obj=app)``)."""
    from leadvault.app import create_app

    context = click.get_current_context(silent=True)
    given = context.find_object(Flask) if context is not None else None
    if given is not None and not overrides:
        return given

    try:
        return create_app(overrides)
    except SettingsError as exc:
        raise ConfigProblem(str(exc)) from None


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


@click.group()
def report() -> None:
    """Reports (each package adds its own: funnel, bots)."""


@contextmanager
def refusing(*errors: type[Exception]) -> Iterator[None]:
    """A service's refusal (one of ``errors``) as the command's one-line refusal."""
    try:
        yield
    except errors as exc:
        raise Refused(str(exc)) from None


@contextmanager
def app_session(app: Flask) -> Iterator[Session]:
    """One transaction for a command, inside the app context (templates, i18n)."""
    from leadvault.app import runtime
    from leadvault.db import unit_of_work

    with app.app_context(), unit_of_work(runtime(app).session_factory) as session:
        yield session
