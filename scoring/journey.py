"""A lead's events as a reader counts them (the handoff page and mail, the console).

One opt-in confirmation of several purposes records one ``optin_confirmed`` event per
purpose, since rules score each purpose (``when = { purpose = "newsletter" }``); a
reader sees one confirmation, so those events are one step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from leadvault.i18n import N_

CONFIRMED = "optin_confirmed"
# An event type as a reader says it (handoff page and mail, the console's activity list);
# a type without words shows its name.
EVENT_WORDS = {
    "page_view": N_("Viewed a page"),
    "asset_downloaded": N_("Downloaded a file"),
    "mail_clicked": N_("Clicked a link in a mail"),
    CONFIRMED: N_("Confirmed the email address"),
    "form_submitted": N_("Sent a form"),
    "unsubscribed": N_("Unsubscribed"),
    "sales_feedback": N_("Feedback from sales"),
}
# Events of one confirmation share its time (``at`` of the signal); older ones were
# stamped one by one, microseconds apart. Two confirmations take two clicks on two links.
SAME_CONFIRMATION = dt.timedelta(seconds=2)


class _Event(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> dt.datetime: ...
    @property
    def awards(self) -> Any: ...


E = TypeVar("E", bound=_Event)


def steps(events: Iterable[E]) -> list[list[E]]:
    """``events`` (in time order, either way) as steps: the ``optin_confirmed`` events of
    one confirmation together, every other event alone."""
    grouped: list[list[E]] = []
    for event in events:
        last = grouped[-1] if grouped else None
        if (
            last is not None
            and event.type == CONFIRMED
            and last[0].type == CONFIRMED
            and abs(last[-1].occurred_at - event.occurred_at) <= SAME_CONFIRMATION
        ):
            last.append(event)
        else:
            grouped.append([event])
    return grouped


def points(step: Iterable[_Event]) -> float:
    """The points a step gave (the sum of its events' awards)."""
    return sum(sum((event.awards or {}).values()) for event in step)
