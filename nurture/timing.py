"""When a step may run: waits, the frequency cap and quiet hours.

A wait is either a delay ("3 days") or a wall-clock moment ("next Tuesday
10:00") in the lead's or the instance's time zone. A mail step that would
break the cap (K mails in D days across all sequences) or fall into quiet
hours is not dropped: it waits until the first moment both allow.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import leads
from leadvault.settings import QuietHours, Settings
from nurture.definition import Wait
from nurture.models import Send

# Countries with a single time zone: the lead's zone when it told us its country.
COUNTRY_ZONES = {
    "AT": "Europe/Vienna",
    "BE": "Europe/Brussels",
    "CH": "Europe/Zurich",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GB": "Europe/London",
    "GR": "Europe/Athens",
    "HU": "Europe/Budapest",
    "IE": "Europe/Dublin",
    "IN": "Asia/Kolkata",
    "IT": "Europe/Rome",
    "JP": "Asia/Tokyo",
    "LU": "Europe/Luxembourg",
    "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo",
    "PL": "Europe/Warsaw",
    "SE": "Europe/Stockholm",
    "SG": "Asia/Singapore",
    "SK": "Europe/Bratislava",
}


def lead_zone(attributes: Mapping[str, str], instance_zone: ZoneInfo) -> ZoneInfo:
    """The lead's time zone: its browser's (sent with the form), else its country's,
    else the instance's."""
    browser = attributes.get("time_zone")
    if browser and leads.known_zone(browser):
        return ZoneInfo(browser)
    country = (attributes.get("country") or "").strip().upper()
    name = COUNTRY_ZONES.get(country)
    return ZoneInfo(name) if name else instance_zone


def wait_until(wait: Wait, now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The moment a wait step ends, in UTC."""
    if wait.delay is not None:
        return now + wait.delay
    if wait.at is None:
        raise ValueError("a wait needs a delay or a time of day")
    local = now.astimezone(zone)
    for ahead in range(8):
        day = local.date() + dt.timedelta(days=ahead)
        if wait.weekday is not None and day.weekday() != wait.weekday:
            continue
        if wait.weekdays_only and day.weekday() >= 5:
            continue
        moment = dt.datetime.combine(day, wait.at, tzinfo=zone)
        if moment > local:
            return moment.astimezone(dt.UTC)
    raise AssertionError("a week always has the day")  # pragma: no cover


def in_quiet_hours(moment: dt.datetime, quiet: QuietHours, zone: ZoneInfo) -> bool:
    local = moment.astimezone(zone).time()
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def quiet_hours_end(moment: dt.datetime, quiet: QuietHours, zone: ZoneInfo) -> dt.datetime:
    """The end of the quiet window ``moment`` falls in (call only when it does)."""
    local = moment.astimezone(zone)
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += dt.timedelta(days=1)  # the window runs past midnight
    return dt.datetime.combine(day, quiet.end, tzinfo=zone).astimezone(dt.UTC)


def next_allowed(
    session: Session, lead_id: uuid.UUID, now: dt.datetime, settings: Settings
) -> tuple[dt.datetime, str | None]:
    """The first moment from ``now`` a marketing mail may be queued for the lead, and why
    it is later than now ("cap" or "quiet"), counting the mails queued in the cap period."""
    window = dt.timedelta(days=settings.nurture_cap_days)
    recent = list(
        session.scalars(
            sa.select(Send.queued_at)
            .where(Send.lead_id == lead_id, Send.queued_at > now - window)
            .order_by(Send.queued_at.desc())
            .limit(settings.nurture_max_mails)
        )
    )
    return allowed_after(recent, now, settings)


def recent_sends(
    session: Session, lead_ids: list[uuid.UUID], now: dt.datetime, settings: Settings
) -> dict[uuid.UUID, list[dt.datetime]]:
    """Mail times within the cap period per lead, newest first (one query per 500 leads)."""
    since = now - dt.timedelta(days=settings.nurture_cap_days)
    found: dict[uuid.UUID, list[dt.datetime]] = {lead_id: [] for lead_id in lead_ids}
    for start in range(0, len(lead_ids), 500):
        for lead_id, queued_at in session.execute(
            sa.select(Send.lead_id, Send.queued_at)
            .where(Send.lead_id.in_(lead_ids[start : start + 500]), Send.queued_at > since)
            .order_by(Send.queued_at.desc())
        ):
            found[lead_id].append(queued_at)
    return found


def allowed_after(
    recent: list[dt.datetime], now: dt.datetime, settings: Settings
) -> tuple[dt.datetime, str | None]:
    """``next_allowed`` for known mail times in the cap period (newest first)."""
    window = dt.timedelta(days=settings.nurture_cap_days)
    limit = settings.nurture_max_mails
    recent = [moment for moment in recent if moment > now - window]
    moment, reason = now, None
    if len(recent) >= limit:
        moment, reason = recent[limit - 1] + window, "cap"
    quiet = settings.nurture_quiet_hours
    if quiet is not None and in_quiet_hours(moment, quiet, settings.zone):
        moment, reason = quiet_hours_end(moment, quiet, settings.zone), reason or "quiet"
    return moment, reason
