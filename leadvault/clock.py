"""The time source. Tests freeze it; nothing else calls ``datetime.now``."""

from __future__ import annotations

import datetime as dt

_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    return _frozen if _frozen is not None else dt.datetime.now(dt.UTC)


def freeze(moment: dt.datetime | None) -> None:
    """Pin ``now()`` to ``moment`` (aware UTC), or release it with ``None``."""
    global _frozen  # noqa: PLW0603 - a process-wide clock is the point
    if moment is not None and moment.tzinfo is None:
        raise ValueError("freeze() needs an aware datetime")
    _frozen = moment


def advance(delta: dt.timedelta) -> None:
    freeze(now() + delta)
