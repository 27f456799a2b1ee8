"""A day given on the command line (``--created-from 2025-03-31``), read as the console
and the API read one: ASCII digits as YYYY-MM-DD only (``click.DateTime`` took
"2026-1-1" and full-width digits, and called 2026-02-30 a wrong format). A refusal
names the option and says what is wrong; click exits with status 2.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LATE_DAY = re.compile(r"[0-9]{5,}-[0-9]{2}-[0-9]{2}")


class Day(click.ParamType):
    """A UTC day as a naive datetime at its midnight (what the export service takes)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.datetime):
            return value
        text = str(value).strip()
        if text.isascii() and (_LATE_DAY.fullmatch(text) or text.startswith("0000-")):
            self.fail(f"{text!r}: a date lies between the years 1 and 9999", param, ctx)
        if not (text.isascii() and _DAY.fullmatch(text)):
            self.fail(f"{text!r} is not a date written as YYYY-MM-DD (2025-03-31)", param, ctx)
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            self.fail(f"there is no such day in the calendar: {text}", param, ctx)
        return dt.datetime(day.year, day.month, day.day)


DAY = Day()
