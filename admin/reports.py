"""Aggregate reports on leads for the console's dashboard and the admin API's report
endpoints (bots and queues: ``admin.operations``).

Every number here comes from an aggregate query (``GROUP BY``, window
functions): no function loads leads, so a report costs the same whether it
covers ten leads or a hundred thousand, and no personal data passes through
it. Leads are attributed to their first touch (``lead_scores.first_form``,
``utm_source``, ``utm_campaign``), as the scoring package records it.

Days are the instance's days (``LEADVAULT_TIME_ZONE``): the database counts
per UTC hour and the hours are folded into local days here, which is exact
for every zone whose offset is a whole number of hours (bot counters, kept per
UTC day by the capture package, are reported as such by ``admin.operations``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections import defaultdict
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.models import Form
from leadvault import clock
from leadvault.db import dialect_of
from leadvault.models import Lead
from scoring.models import Handoff, HandoffStatus, LeadScore, Stage, StageChange

FUNNEL: tuple[str, ...] = (Stage.NEW, Stage.MQL, Stage.SAL, Stage.SQL, Stage.WON)
PERIODS = (30, 90)  # the dashboard's choices of days
GROUPINGS = ("utm_source", "utm_campaign", "form")
Grouping = Literal["utm_source", "utm_campaign", "form"]
NONE_LABEL = "-"  # the group of leads without a form / source / campaign
MAX_GROUPS = 50  # source tables are bounded: the biggest groups first


@dataclasses.dataclass(frozen=True)
class Window:
    """Leads created in ``[since, until)``, optionally of one first form / UTM source."""

    since: dt.datetime
    until: dt.datetime | None = None
    form: str | None = None  # a form's public id
    utm_source: str | None = None

    @classmethod
    def last_days(cls, days: int, *, now: dt.datetime | None = None, **kw: Any) -> Window:
        return cls(since=(now or clock.now()) - dt.timedelta(days=days), **kw)


def _lead_filter(window: Window) -> list[sa.ColumnElement[bool]]:
    """Conditions on ``leads`` (and ``lead_scores``, outer-joined) for a window."""
    conditions: list[sa.ColumnElement[bool]] = [Lead.created_at >= window.since]
    if window.until is not None:
        conditions.append(Lead.created_at < window.until)
    if window.form is not None:
        conditions.append(_group_column("form") == window.form)
    if window.utm_source is not None:
        conditions.append(_group_column("utm_source") == window.utm_source)
    return conditions


def _windowed_leads(window: Window) -> sa.Select[Any]:
    return (
        sa.select(Lead.id)
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .where(*_lead_filter(window))
    )


def _group_column(grouping: Grouping) -> sa.ColumnElement[str]:
    column = {
        "utm_source": LeadScore.utm_source,
        "utm_campaign": LeadScore.utm_campaign,
        "form": LeadScore.first_form,
    }[grouping]
    return sa.func.coalesce(column, NONE_LABEL)


def _hour_bucket(session: Session, column: Any) -> sa.ColumnElement[str]:
    """``YYYY-MM-DD HH`` of a UTC timestamp, on either database."""
    if dialect_of(session) == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return sa.func.strftime("%Y-%m-%d %H", column)


def _seconds_between(session: Session, later: Any, earlier: Any) -> sa.ColumnElement[float]:
    if dialect_of(session) == "postgresql":
        return sa.cast(sa.extract("epoch", later - earlier), sa.Float)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _local_day(bucket: str, zone: ZoneInfo) -> dt.date:
    hour = dt.datetime.strptime(bucket, "%Y-%m-%d %H").replace(tzinfo=dt.UTC)
    return hour.astimezone(zone).date()


# --- leads per day by form ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DailySeries:
    """New leads per local day and first form, every day of the period present."""

    days: list[dt.date]
    by_form: dict[str, list[int]]  # form public id (or "-") -> one count per day
    form_names: dict[str, str]  # form public id -> its name

    @property
    def totals(self) -> list[int]:
        return [sum(day) for day in zip(*self.by_form.values(), strict=True)] or [
            0 for _ in self.days
        ]

    @property
    def total(self) -> int:
        return sum(self.totals)


def leads_per_day(
    session: Session, *, days: int, zone: ZoneInfo, now: dt.datetime | None = None
) -> DailySeries:
    """New leads per day of the last ``days`` local days (today included), by first form."""
    now = now or clock.now()
    today = now.astimezone(zone).date()
    first_day = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first_day, dt.time(), zone).astimezone(dt.UTC)
    bucket = _hour_bucket(session, Lead.created_at)
    form = _group_column("form")
    rows = session.execute(
        sa.select(form, bucket, sa.func.count())
        .select_from(Lead)
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .where(Lead.created_at >= since, Lead.created_at <= now)
        .group_by(form, bucket)
    ).all()
    day_list = [first_day + dt.timedelta(days=i) for i in range(days)]
    position = {day: i for i, day in enumerate(day_list)}
    by_form: dict[str, list[int]] = {}
    for form_id, hour, count in rows:
        index = position.get(_local_day(hour, zone))
        if index is None:
            continue
        by_form.setdefault(form_id, [0] * days)[index] += int(count)
    return DailySeries(day_list, dict(sorted(by_form.items())), form_names(session, by_form))


def form_names(session: Session, public_ids: Any) -> dict[str, str]:
    ids = [i for i in public_ids if i != NONE_LABEL]
    if not ids:
        return {}
    query = sa.select(Form.public_id, Form.name).where(Form.public_id.in_(ids))
    return dict(list(session.execute(query)))


# --- the funnel -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FunnelStep:
    stage: str
    reached: int  # leads of the window that ever reached this stage
    conversion: float | None  # share of the previous step's leads that reached this one
    median_seconds: float | None  # median time from the previous stage to this one


@dataclasses.dataclass(frozen=True)
class Funnel:
    window: Window
    steps: list[FunnelStep]
    current: dict[str, int]  # leads of the window per stage they are in now

    @property
    def overall(self) -> float | None:
        """Share of new leads that were won."""
        first, last = self.steps[0].reached, self.steps[-1].reached
        return last / first if first else None


def _stage_times(window: Window) -> sa.CTE:
    """Each lead of the window that went on from "new": when it was created and when it
    first entered each later funnel stage (one pass over its stage history)."""
    entered = [
        sa.func.min(sa.case((StageChange.to_stage == stage, StageChange.at))).label(str(stage))
        for stage in FUNNEL[1:]
    ]
    return (
        sa.select(StageChange.lead_id, sa.func.min(Lead.created_at).label("created"), *entered)
        .join(Lead, Lead.id == StageChange.lead_id)
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .where(*_lead_filter(window), StageChange.to_stage.in_(FUNNEL[1:]))
        .group_by(StageChange.lead_id)
        .cte("stage_times")
    )


def funnel(session: Session, window: Window) -> Funnel:
    """new → MQL → SAL → SQL → won for the leads created in the window."""
    return overview(session, window, limit=0)[0]


def _stage_steps(session: Session, window: Window) -> dict[str, tuple[int, float | None]]:
    """Per funnel stage after "new": how many of the window's leads reached it from the
    stage before, and the median seconds that step took (window functions, both
    databases; one pass over the window's stage history)."""
    times = _stage_times(window)
    pieces = []
    for before, after in itertools.pairwise(FUNNEL):
        start = times.c.created if before == Stage.NEW else times.c[str(before)]
        end = times.c[str(after)]
        pieces.append(
            sa.select(
                sa.literal(str(after)).label("stage"),
                _seconds_between(session, end, start).label("seconds"),
            ).where(start.is_not(None), end.is_not(None))
        )
    return medians_by_stage(session, sa.union_all(*pieces).subquery("durations"))


def medians_by_stage(
    session: Session, durations: sa.Subquery
) -> dict[str, tuple[int, float | None]]:
    """Per ``durations.c.stage``: how many rows, and the median of ``durations.c.seconds``
    (window functions, both databases; never below zero)."""
    ranked = sa.select(
        durations.c.stage,
        durations.c.seconds,
        sa.func.row_number()
        .over(partition_by=durations.c.stage, order_by=durations.c.seconds)
        .label("rn"),
        sa.func.count().over(partition_by=durations.c.stage).label("n"),
    ).subquery("ranked")
    # The middle row, or the mean of the two middle rows (floor division: ``//``).
    middle = sa.or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2)
    rows = session.execute(
        sa.select(
            ranked.c.stage,
            sa.func.max(ranked.c.n),
            sa.func.avg(sa.case((middle, ranked.c.seconds))),
        ).group_by(ranked.c.stage)
    ).all()
    return {
        str(stage): (int(n), max(0.0, float(median)) if median is not None else None)
        for stage, n, median in rows
    }


# --- sources and lead quality ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SourceQuality:
    key: str  # the UTM source / campaign / form public id; "-" for none
    leads: int
    mql: int
    sal: int
    suspect: int
    rejected: dict[str, int]  # sales' reject reasons and how often

    @property
    def mql_share(self) -> float | None:
        return self.mql / self.leads if self.leads else None

    @property
    def sal_share(self) -> float | None:
        return self.sal / self.leads if self.leads else None

    @property
    def suspect_share(self) -> float | None:
        return self.suspect / self.leads if self.leads else None


def sources(
    session: Session, window: Window, *, by: Grouping = "utm_source", limit: int = MAX_GROUPS
) -> list[SourceQuality]:
    """Lead quality per first-touch source: the biggest ``limit`` groups, biggest first."""
    return overview(session, window, by=by, limit=limit)[1]


def overview(
    session: Session, window: Window, *, by: Grouping = "utm_source", limit: int = MAX_GROUPS
) -> tuple[Funnel, list[SourceQuality]]:
    """The funnel and the source quality table together, from one pass over the
    window's leads (grouped by source and current stage) and one over their stage
    history: what the dashboard shows, at the cost of about two queries."""
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    key = _group_column(by)
    created = [Lead.created_at >= window.since]
    if window.until is not None:
        created.append(Lead.created_at < window.until)
    reached = (
        sa.select(
            StageChange.lead_id,
            sa.func.max(sa.case((StageChange.to_stage == Stage.MQL.value, 1), else_=0)).label(
                "mql"
            ),
            sa.func.max(sa.case((StageChange.to_stage == Stage.SAL.value, 1), else_=0)).label(
                "sal"
            ),
        )
        .join(Lead, Lead.id == StageChange.lead_id)
        .where(*created, StageChange.to_stage.in_([Stage.MQL.value, Stage.SAL.value]))
        .group_by(StageChange.lead_id)
        .subquery("reached")
    )
    suspect = sa.case((LeadScore.suspect.is_(True), 1), else_=0)
    state = sa.func.coalesce(LeadScore.stage, Stage.NEW.value)
    rows = session.execute(
        sa.select(
            key.label("key"),
            state.label("state"),
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(reached.c.mql), 0),
            sa.func.coalesce(sa.func.sum(reached.c.sal), 0),
            sa.func.coalesce(sa.func.sum(suspect), 0),
        )
        .select_from(Lead)
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .outerjoin(reached, reached.c.lead_id == Lead.id)
        .where(*_lead_filter(window))
        .group_by(key, state)
    ).all()
    current: dict[str, int] = defaultdict(int)
    groups: dict[str, list[int]] = {}
    for group, stage, n, mql, sal, sus in rows:
        current[str(stage)] += int(n)
        totals = groups.setdefault(str(group), [0, 0, 0, 0])
        for i, value in enumerate((n, mql, sal, sus)):
            totals[i] += int(value)
    steps = funnel_steps(sum(current.values()), _stage_steps(session, window))
    biggest = biggest_groups(groups, limit)
    rejected: dict[str, dict[str, int]] = defaultdict(dict)
    if biggest:
        for group, reason, count in session.execute(
            sa.select(key, Handoff.reject_reason, sa.func.count(sa.distinct(Handoff.lead_id)))
            .select_from(Handoff)
            .join(Lead, Lead.id == Handoff.lead_id)
            .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
            .where(
                *_lead_filter(window),
                Handoff.status == HandoffStatus.REJECTED.value,
                Handoff.reject_reason.is_not(None),
                key.in_(biggest),
            )
            .group_by(key, Handoff.reject_reason)
        ):
            rejected[group][reason] = int(count)
    return Funnel(window, steps, dict(current)), source_quality(groups, rejected, biggest)


def funnel_steps(new: int, found: dict[str, tuple[int, float | None]]) -> list[FunnelStep]:
    """The funnel from the count of new leads and, per later stage, how many reached it
    from the stage before and the median time it took."""
    steps: list[FunnelStep] = [FunnelStep(Stage.NEW, new, None, None)]
    previous = new
    for stage in FUNNEL[1:]:
        count, median = found.get(str(stage), (0, None))
        steps.append(FunnelStep(stage, count, count / previous if previous else None, median))
        previous = count
    return steps


def biggest_groups(groups: dict[str, list[int]], limit: int) -> list[str]:
    """The ``limit`` groups with the most leads (``groups[g][0]``), biggest first."""
    return sorted(groups, key=lambda g: (-groups[g][0], g))[: max(0, limit)]


def source_quality(
    groups: dict[str, list[int]], rejected: dict[str, dict[str, int]], biggest: list[str]
) -> list[SourceQuality]:
    """Rows of the sources table: ``groups[g]`` is [leads, mql, sal, suspect]."""
    return [
        SourceQuality(g, *groups[g], rejected=dict(sorted(rejected.get(g, {}).items())))
        for g in biggest
    ]


def data_version(session: Session) -> tuple[Any, ...]:
    """Changes whenever a lead is added, moves stage or is erased (three index look-ups):
    a cache of the lead reports is good while this stays the same."""
    return tuple(
        session.execute(
            sa.select(
                sa.select(sa.func.max(StageChange.id)).scalar_subquery(),
                sa.select(sa.func.max(Lead.created_at)).scalar_subquery(),
                sa.select(sa.func.count()).select_from(Lead).scalar_subquery(),
            )
        ).one()
    )
