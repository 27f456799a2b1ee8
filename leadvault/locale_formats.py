"""Dates, moments and numbers in a language's form (Babel's CLDR data).

Apart from :mod:`leadvault.i18n`, which it builds on: formatting needs the current
language, translating text does not need formatting. :func:`init_app` gives
templates the ``date``, ``datetime`` and ``number`` filters.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from babel import Locale, dates, numbers

from leadvault import i18n

if TYPE_CHECKING:
    from flask import Flask


def format_date(
    value: dt.date | dt.datetime,
    lang: str | None = None,
    fmt: str = "medium",
    zone: dt.tzinfo | None = None,
) -> str:
    """A date in the language's form ("12 Mar 2025" / "12.03.2025"); a moment's date in
    ``zone`` (the instance's time zone; UTC when not given)."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(zone or dt.UTC).date()
    return dates.format_date(value, fmt, locale=_locale(lang))


def format_datetime(
    value: dt.datetime, lang: str | None = None, fmt: str = "medium", zone: dt.tzinfo | None = None
) -> str:
    """A moment in ``zone`` (UTC when not given), in the language's form, with its time
    zone named ("2 Mar 2026, 10:30 CET" / "02.03.2026, 10:30 CET")."""
    local = value.astimezone(zone or dt.UTC)
    pattern = dates.get_datetime_format(fmt, locale=_locale(lang))
    day = dates.format_date(local.date(), fmt, locale=_locale(lang))
    # CLDR's narrow no-break space before AM/PM renders as no space at all in many fonts
    # and as a box in older mail clients: a plain no-break space reads the same everywhere.
    time = dates.format_time(local.time(), "short", locale=_locale(lang)).replace(
        "\N{NARROW NO-BREAK SPACE}", "\N{NO-BREAK SPACE}"
    )
    return f"{pattern.replace('{1}', day).replace('{0}', time)} {local.tzname() or 'UTC'}"


def format_number(value: float | int | Decimal, lang: str | None = None) -> str:
    """A number with the language's separators ("1,234.5" / "1.234,5")."""
    return numbers.format_decimal(value, locale=_locale(lang))


def _locale(lang: str | None) -> Locale:
    return _parsed_locale(lang or i18n.current_language())


@functools.cache
def _parsed_locale(lang: str) -> Locale:
    return Locale.parse(lang)


def _jinja_filters() -> dict[str, Callable[..., Any]]:
    from jinja2 import pass_context

    # Moments are shown in the instance's time zone (``time_zone`` in the context).
    @pass_context
    def date_filter(context: Any, value: Any, fmt: str = "medium") -> str:
        zone = context.get("time_zone")
        return format_date(value, i18n.template_language(context), fmt, zone) if value else ""

    @pass_context
    def datetime_filter(context: Any, value: Any, fmt: str = "medium") -> str:
        zone = context.get("time_zone")
        return format_datetime(value, i18n.template_language(context), fmt, zone) if value else ""

    @pass_context
    def number_filter(context: Any, value: Any) -> str:
        return format_number(value, i18n.template_language(context)) if value is not None else ""

    return {"date": date_filter, "datetime": datetime_filter, "number": number_filter}


def init_app(app: Flask) -> None:
    """The ``date``, ``datetime`` and ``number`` filters, in the template's language."""
    app.jinja_env.filters.update(_jinja_filters())
