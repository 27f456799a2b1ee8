"""What the dashboard shows: the reports (admin.reports, admin.operations) drawn as charts
(admin.charts).

Pure presentation: numbers in, translated labels and SVG out. Links into the
lead list are made by the caller's ``link`` function (None where the role may
not list leads: a viewer sees the numbers, not the leads behind them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from admin import charts, operations, reports, rollup_reports
from leadvault import clock
from leadvault.i18n import N_, current_language, gettext, ngettext
from leadvault.locale_formats import format_date, format_number
from scoring import stages

STAGE_LABELS = stages.STAGE_LABELS  # the salesperson's handoff page names them too
CONSENT_LABELS = {
    "none": N_("Not asked"),
    "pending": N_("Waiting for confirmation"),
    "granted": N_("Given"),
    "withdrawn": N_("Withdrawn"),
}
BOT_REASON_LABELS = {
    "honeypot": N_("Hidden field filled in"),
    "token": N_("No or forged form token"),
    "too_fast": N_("Sent too fast (kept)"),
    "expired": N_("Form page too old"),
    "proof_of_work": N_("No proof of work"),
    "replay": N_("Token used twice"),
}
NO_VALUE = "\u2013"  # an en dash where there is no number
MAX_SERIES = 5  # forms drawn as lines; the rest are summed as "Other forms"
MAX_SOURCES = 20  # rows of the sources table, the biggest first

Link = Callable[..., str | None]


def stage_label(stage: str) -> str:
    return gettext(STAGE_LABELS.get(stage, stage))


def consent_label(status: str) -> str:
    return gettext(CONSENT_LABELS.get(status, status))


def percent(value: float | None) -> str:
    if value is None:
        return NO_VALUE
    return gettext("%(n)s %%", n=format_number(round(value * 100, 1)))


def duration(seconds: float | None) -> str:
    """A median time in the largest sensible unit."""
    if seconds is None:
        return NO_VALUE
    if seconds < 3600:
        return ngettext("%(num)d minute", "%(num)d minutes", max(1, round(seconds / 60)))
    if seconds < 2 * 86400:
        return ngettext("%(num)d hour", "%(num)d hours", round(seconds / 3600))
    return ngettext("%(num)d day", "%(num)d days", round(seconds / 86400))


def linked(value: int | float, href: str | None) -> Markup:
    """A number, as a link into the lead list where there is one."""
    text = format_number(value)
    if href is None:
        return escape(text)
    return Markup('<a href="{}">{}</a>').format(href, text)


@dataclasses.dataclass(frozen=True)
class Dashboard:
    days: int
    since: dt.date
    tiles: list[dict[str, Any]]
    per_day_chart: Markup
    per_day_legend: Markup
    per_day_table: Markup
    funnel_chart: Markup
    funnel_table: Markup
    sources_table: Markup
    bots_chart: Markup
    bots_table: Markup
    queues: list[operations.QueueHealth]
    now: dt.datetime


# The lead reports of a period, kept a few seconds per process while the leads stay
# the same (reports.data_version: no lead added, moved or erased): they come from the
# daily aggregates (admin.rollup) in a few milliseconds, so the cache only smooths a
# burst of reloads. A change shows at once; a suspect flag set later by enrichment
# may wait for the expiry.
CACHE_SECONDS = 10.0
_CACHE_SIZE = 16


class ReportCache:
    """Per app (``app.extensions["console_reports"]``), shared by its threads."""

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self.lock = threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


def report_cache() -> ReportCache:
    from flask import current_app

    return current_app.extensions.setdefault("console_reports", ReportCache())


def _lead_reports(
    session: Session, days: int, zone: ZoneInfo, now: dt.datetime
) -> tuple[reports.DailySeries, reports.Funnel, list[reports.SourceQuality]]:
    key = (days, zone.key, now.astimezone(zone).date(), reports.data_version(session))
    moment = time.monotonic()
    cache = report_cache()
    with cache.lock:
        hit = cache.entries.get(key)
        if hit is not None and moment - hit[0] < CACHE_SECONDS:
            return hit[1]
    if rollup_reports.usable(session, zone):
        series, funnel, sources = rollup_reports.lead_reports(
            session, days=days, zone=zone, now=now, limit=MAX_SOURCES
        )
    else:  # aggregates built in another zone: from the source tables (slower)
        series = reports.leads_per_day(session, days=days, zone=zone, now=now)
        since = dt.datetime.combine(series.days[0], dt.time(), zone).astimezone(dt.UTC)
        funnel, sources = reports.overview(session, reports.Window(since=since), limit=MAX_SOURCES)
    with cache.lock:
        if len(cache.entries) >= _CACHE_SIZE:
            cache.entries.clear()
        cache.entries[key] = (moment, (series, funnel, sources))
    return series, funnel, sources


def build(session: Session, *, days: int, zone: ZoneInfo, link: Link) -> Dashboard:
    now = clock.now()
    series, funnel, sources = _lead_reports(session, days, zone, now)
    since_day = series.days[0]
    since = dt.datetime.combine(since_day, dt.time(), zone).astimezone(dt.UTC)
    bots = operations.bot_days(session, days=days, now=now)
    since_arg = since.astimezone(dt.UTC).date().isoformat()

    def stage_link(stage: str) -> str | None:
        return link(since=since_arg) if stage == "new" else link(since=since_arg, reached=stage)

    tiles = [
        {
            "label": stage_label(step.stage),
            "value": linked(step.reached, stage_link(step.stage)),
            "note": percent(step.conversion) if step.conversion is not None else "",
        }
        for step in funnel.steps
    ]
    return Dashboard(
        days=days,
        since=since_day,
        tiles=tiles,
        **_per_day(series, days),
        **_funnel(funnel, stage_link),
        sources_table=_sources(sources, link, since_arg),
        **_bots(bots),
        queues=operations.queue_health(session),
        now=now,
    )


def _day_label(day: dt.date) -> str:
    """A short day for an axis ("Mar 2" / "2. März")."""
    return format_skeleton("MMMd", day, locale=current_language())


def _per_day(series: reports.DailySeries, days: int) -> dict[str, Markup]:
    names = {key: series.form_names.get(key, gettext("No form")) for key in series.by_form}
    ranked = sorted(series.by_form, key=lambda k: -sum(series.by_form[k]))
    shown = ranked[:MAX_SERIES]
    lines = [charts.Series(names[key], series.by_form[key]) for key in shown]
    rest = ranked[MAX_SERIES:]
    if rest:
        other = [sum(series.by_form[k][i] for k in rest) for i in range(days)]
        lines.append(charts.Series(gettext("Other forms"), other))
    if not lines:
        lines = [charts.Series(gettext("All forms"), [0] * days)]
    busiest = max(range(days), key=lambda i: series.totals[i]) if series.total else None
    desc = ngettext(
        "%(num)d new lead in the last %(days)d days.",
        "%(num)d new leads in the last %(days)d days.",
        series.total,
        days=days,
    )
    if busiest is not None:
        desc += " " + gettext(
            "The busiest day was %(day)s with %(n)s.",
            day=format_date(series.days[busiest], fmt="long"),
            n=format_number(series.totals[busiest]),
        )
    labels = [_day_label(day) for day in series.days]
    chart = charts.line_chart(
        "chart-per-day", gettext("New leads per day by form"), desc, labels, lines
    )
    headers = [gettext("Day"), *[line.name for line in lines], gettext("Total")]
    rows = [
        [
            format_date(day),
            *[format_number(line.values[i]) for line in lines],
            format_number(series.totals[i]),
        ]
        for i, day in enumerate(series.days)
        if series.totals[i]
    ]
    return {
        "per_day_chart": chart,
        "per_day_legend": charts.legend([line.name for line in lines]),
        "per_day_table": charts.data_table(
            gettext("New leads per day (days without leads left out)"), headers, rows
        ),
    }


def _funnel(funnel: reports.Funnel, stage_link: Callable[[str], str | None]) -> dict[str, Markup]:
    bars = []
    rows = []
    for step in funnel.steps:
        note = format_number(step.reached)
        if step.conversion is not None:
            note += f" ({percent(step.conversion)})"
        bars.append(charts.Bar(stage_label(step.stage), step.reached, note, stage_link(step.stage)))
        rows.append(
            [
                stage_label(step.stage),
                linked(step.reached, stage_link(step.stage)),
                percent(step.conversion),
                duration(step.median_seconds),
            ]
        )
    desc = gettext(
        "Of %(new)s new leads, %(mql)s became MQL, %(sal)s SAL, %(sql)s SQL and %(won)s were won.",
        **{step.stage: format_number(step.reached) for step in funnel.steps},
    )
    return {
        "funnel_chart": charts.funnel_chart("chart-funnel", gettext("Funnel"), desc, bars),
        "funnel_table": charts.data_table(
            gettext("Funnel: leads that reached each stage"),
            [
                gettext("Stage"),
                gettext("Leads"),
                gettext("From the stage before"),
                gettext("Median time to get there"),
            ],
            rows,
        ),
    }


def _sources(rows: list[reports.SourceQuality], link: Link, since_arg: str) -> Markup:
    from scoring.stages import REASON_LABELS

    body = []
    for row in rows:
        name = gettext("No source") if row.key == reports.NONE_LABEL else row.key
        rejected = ", ".join(
            f"{gettext(REASON_LABELS.get(reason, reason))}: {format_number(n)}"
            for reason, n in row.rejected.items()
        )
        body.append(
            [
                name,
                linked(row.leads, link(since=since_arg, utm_source=row.key, touch="first")),
                percent(row.mql_share),
                percent(row.sal_share),
                linked(
                    row.suspect,
                    link(since=since_arg, utm_source=row.key, touch="first", suspect="1"),
                )
                if row.suspect
                else "0",
                rejected or NO_VALUE,
            ]
        )
    return charts.data_table(
        gettext("Sources (UTM source of the first touch) and lead quality"),
        [
            gettext("Source"),
            gettext("Leads"),
            gettext("Reached MQL"),
            gettext("Reached SAL"),
            gettext("Suspect"),
            gettext("Rejected by sales"),
        ],
        body,
    )


def _bots(days: list[operations.BotDay]) -> dict[str, Markup]:
    labels = [_day_label(d.day) for d in days]
    dropped = sum(d.dropped for d in days)
    accepted = sum(d.accepted for d in days)
    desc = gettext(
        "%(dropped)s submissions refused as bots, %(accepted)s flagged but kept.",
        dropped=format_number(dropped),
        accepted=format_number(accepted),
    )
    chart = charts.stacked_bar_chart(
        "chart-bots",
        gettext("Bot verdicts per day"),
        desc,
        labels,
        [
            charts.Series(gettext("Refused"), [d.dropped for d in days]),
            charts.Series(gettext("Kept (flagged)"), [d.accepted for d in days]),
        ],
    )
    rows = [
        [
            format_date(d.day),
            format_number(d.dropped),
            format_number(d.accepted),
            ", ".join(
                f"{gettext(BOT_REASON_LABELS.get(r, r))}: {format_number(n)}"
                for r, n in d.reasons.items()
            ),
        ]
        for d in days
        if d.dropped or d.accepted
    ]
    table = charts.data_table(
        gettext("Bot verdicts per day (UTC; days without any left out)"),
        [gettext("Day"), gettext("Refused"), gettext("Kept (flagged)"), gettext("Reasons")],
        rows,
    )
    return {"bots_chart": chart, "bots_table": table}
