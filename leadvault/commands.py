"""What every ``leadvault`` command shares: one-line errors, loading the app, a unit of work.

Apart from ``leadvault/cli.py`` so that domain packages' commands can import it
without importing the command group that registers them.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import Flask
from sqlalchemy.orm import Session

from leadvault import days
from leadvault import settings as settings_module
from leadvault.model_base import ROW_ID_MAX
from leadvault.settings import Settings, SettingsError


class ConfigProblem(click.ClickException):
    """A bad setting: one line naming the variable, exit code 2."""

    exit_code = 2


# A row id given on the command line: a larger number overflowed SQLite's driver
# with a traceback, it is a usage error naming the argument instead (exit code 2).
ROW_ID = click.IntRange(1, ROW_ID_MAX)


def not_one_of(value: str, valid: Iterable[str]) -> str:
    """The words refusing a code that is none of ``valid``, naming them."""
    return f"{value!r} is not one of: {', '.join(valid)}"


def refuse_unknown(option: str, values: str | Iterable[str] | None, valid: Iterable[str]) -> None:
    """Exit 2 naming ``option`` and the valid codes when a value is none of them: a
    filter by a code that does not exist (a typo, another case) would select nothing
    and read as "no such leads". For codes known only with a session (purposes)."""
    known = list(valid)
    for value in (values,) if isinstance(values, str) else values or ():
        if value not in known:
            raise click.BadParameter(not_one_of(value, known), param_hint=f"'{option}'")


def codes_of(valid: Callable[[], Iterable[str]]) -> Any:
    """A click callback for an option (single or ``multiple``) that takes only the codes
    ``valid()`` returns, given exactly; :func:`refuse_unknown` at parse time. ``valid``
    is called only then, so a command's module need not import the catalogue's."""

    def check(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        refuse_unknown(param.opts[0], value, valid())
        return value

    return check


class Finite(click.ParamType):
    """A number that is neither NaN nor infinite (``float`` takes "nan" and "inf",
    which compare false with everything and would select nothing, or everything)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE = Finite()


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


class Day(click.ParamType):
    """A UTC day given as an option (``--created-from 2025-03-31``), read by
    :func:`leadvault.days.read` as the console and the API read one; a refusal names the
    option and says what is wrong (click exits with status 2). The value is a naive
    datetime at the day's midnight (what the services take as UTC)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.datetime):
            return value
        try:
            day = days.read(str(value))
        except days.BadDay as exc:
            self.fail(f"{str(value).strip()!r}: {exc.words}", param, ctx)
        return dt.datetime(day.year, day.month, day.day)


DAY = Day()


def refuse_empty_span(
    first: tuple[str, dt.datetime | None],
    last: tuple[str, dt.datetime | None],
    *,
    last_included: bool,
) -> None:
    """Exit 2 naming both options when the days given as (option, value) hold nothing:
    an empty result would look like no data rather than a typo."""
    (first_option, start), (last_option, end) = first, last
    if start is None or end is None or not days.empty_span(start, end, last_included=last_included):
        return
    if last_included:
        raise click.UsageError(
            f"{last_option} {end:%Y-%m-%d} lies before {first_option} {start:%Y-%m-%d}: "
            "no day lies between them"
        )
    raise click.UsageError(
        f"{last_option} {end:%Y-%m-%d} must lie after {first_option} {start:%Y-%m-%d} "
        f"({last_option} is exclusive: that day itself is left out)"
    )
