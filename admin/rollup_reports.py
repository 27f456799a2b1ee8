"""The dashboard's lead reports read from the daily aggregates (``admin.rollup`` keeps
them): a few index range scans however many leads there are, giving what
:mod:`admin.reports` computes from the source tables.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from admin import reports
from admin.models import ReportDay, ReportRejection, ReportState, ReportStep
from admin.rollup_facts import STEPS


def usable(session: Session, zone: ZoneInfo) -> bool:
    """Whether the aggregates count days in ``zone`` (else the dashboard reads the sources)."""
    return session.scalar(sa.select(ReportState.time_zone).where(ReportState.id == 1)) == zone.key


def lead_reports(
    session: Session, *, days: int, zone: ZoneInfo, now: dt.datetime, limit: int
) -> tuple[reports.DailySeries, reports.Funnel, list[reports.SourceQuality]]:
    """The dashboard's lead reports of the last ``days`` local days (today included), as
    :func:`admin.reports.leads_per_day` and :func:`admin.reports.overview` give them.
    ``Funnel.current`` stays empty: the dashboard does not show it."""
    today = now.astimezone(zone).date()
    first = today - dt.timedelta(days=days - 1)
    day_list = [first + dt.timedelta(days=i) for i in range(days)]
    position = {day: i for i, day in enumerate(day_list)}
    in_period = sa.and_(ReportDay.day >= first, ReportDay.day <= today)
    by_form: dict[str, list[int]] = {}
    for form, day, count in session.execute(
        sa.select(ReportDay.form, ReportDay.day, sa.func.sum(ReportDay.leads))
        .where(in_period)
        .group_by(ReportDay.form, ReportDay.day)
    ):
        if count:
            by_form.setdefault(form, [0] * days)[position[day]] += int(count)
    series = reports.DailySeries(
        day_list, dict(sorted(by_form.items())), reports.form_names(session, by_form)
    )
    groups: dict[str, list[int]] = {}
    for source, *sums in session.execute(
        sa.select(
            ReportDay.source,
            sa.func.sum(ReportDay.leads),
            sa.func.sum(ReportDay.mql),
            sa.func.sum(ReportDay.sal),
            sa.func.sum(ReportDay.suspect),
        )
        .where(in_period)
        .group_by(ReportDay.source)
    ):
        if sums[0]:
            groups[source] = [int(n) for n in sums]
    biggest = reports.biggest_groups(groups, limit)
    rejected: dict[str, dict[str, int]] = defaultdict(dict)
    for source, reason, count in session.execute(
        sa.select(
            ReportRejection.source, ReportRejection.reason, sa.func.sum(ReportRejection.leads)
        )
        .where(ReportRejection.day >= first, ReportRejection.day <= today)
        .group_by(ReportRejection.source, ReportRejection.reason)
    ):
        if count and source in biggest:
            rejected[source][reason] = int(count)
    found = _medians(session, first, today)
    since = dt.datetime.combine(first, dt.time(), zone).astimezone(dt.UTC)
    funnel = reports.Funnel(
        reports.Window(since=since), reports.funnel_steps(series.total, found), {}
    )
    return series, funnel, reports.source_quality(groups, rejected, biggest)


def _medians(
    session: Session, first: dt.date, last: dt.date
) -> dict[str, tuple[int, float | None]]:
    """Per funnel step: how many leads of the days took it, and the median seconds, as
    :func:`admin.reports.medians_by_stage` gives them. Per stage a count and the one or
    two middle values in order, each one range of the (stage, day, seconds) index: a
    window function over every duration of 90 days took most of the dashboard's time."""
    found: dict[str, tuple[int, float | None]] = {}
    for stage in STEPS:
        in_days = (ReportStep.stage == stage, ReportStep.day >= first, ReportStep.day <= last)
        count = session.scalar(sa.select(sa.func.count()).select_from(ReportStep).where(*in_days))
        if not count:
            continue
        middle = list(
            session.scalars(
                sa.select(ReportStep.seconds)
                .where(*in_days)
                .order_by(ReportStep.seconds)
                .offset((count - 1) // 2)
                .limit(2 - count % 2)
            )
        )
        found[stage] = (count, max(0.0, sum(middle) / len(middle)))
    return found
