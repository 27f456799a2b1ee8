"""admin.reports: aggregate numbers for the dashboard and the admin API, on both databases.

Leads are made through the services (tests/factories.py) under a frozen
clock, moved through the funnel by scoring's own ``stages.transition``, and
the reports are compared with numbers worked out by hand.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from admin import operations, reports
from leadvault import clock
from leadvault.models import InboxItem, InboxStatus, OutboxMessage, OutboxStatus
from tests import factories
from tests.factories import uow

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def lead_at(app: Any, at: dt.datetime, form_id: str, **kwargs: Any) -> uuid.UUID:
    clock.freeze(at)
    return factories.lead(app, form_id=form_id, confirmed=False, **kwargs)


def move(app: Any, lead_id: uuid.UUID, to: str, at: dt.datetime) -> None:
    from scoring import stages

    clock.freeze(at)
    with uow(app) as s:
        state = stages.state_of(s, lead_id, for_update=True)
        stages.transition(s, state, to, cause_kind="person", cause="test")


def reject(app: Any, lead_id: uuid.UUID, reason: str, at: dt.datetime) -> None:
    """A handoff that sales rejected, through scoring's own reject."""
    from scoring import handoff
    from scoring.models import Handoff, HandoffStatus

    clock.freeze(at)
    with uow(app) as s:
        offer = Handoff(
            id=uuid.uuid4(), lead_id=lead_id, routing_rule="test", status=HandoffStatus.OFFERED
        )
        s.add(offer)
        s.flush()
        handoff.reject(s, offer, reason)


@pytest.fixture
def world(app: Any) -> dict[str, Any]:
    """Four leads in the last 30 days, one 40 days ago; see the module docstring."""
    footer = factories.form(app, name="Footer")
    sidebar = factories.form(app, name="Sidebar")
    one = lead_at(app, NOW - 5 * DAY, footer, source={"utm_source": "google"})
    two = lead_at(app, NOW - 5 * DAY, footer, source={"utm_source": "google"})
    three = lead_at(app, NOW - 2 * DAY, sidebar, source={"utm_source": "newsletter"})
    four = lead_at(app, NOW - DAY, sidebar, email=f"x{uuid.uuid4().hex[:6]}@mailinator.com")
    lead_at(app, NOW - 40 * DAY, footer, source={"utm_source": "google"})
    start = NOW - 5 * DAY
    move(app, one, "mql", start + HOUR)
    move(app, one, "sal", start + 3 * HOUR)
    move(app, one, "sql", start + DAY + 3 * HOUR)
    move(app, one, "won", start + 2 * DAY + 3 * HOUR)
    move(app, two, "mql", start + 3 * HOUR)
    move(app, two, "sal", start + 5 * HOUR)
    reject(app, two, "no_budget", start + 6 * HOUR)
    move(app, three, "mql", NOW - 2 * DAY + 5 * HOUR)
    clock.freeze(NOW)
    return {"footer": footer, "sidebar": sidebar, "leads": (one, two, three, four)}


def test_funnel_counts_conversions_and_median_times(app, world):
    with uow(app) as s:
        funnel = reports.funnel(s, reports.Window.last_days(30))
    steps = {step.stage: step for step in funnel.steps}
    assert [(st.stage, st.reached) for st in funnel.steps] == [
        ("new", 4),
        ("mql", 3),
        ("sal", 2),
        ("sql", 1),
        ("won", 1),
    ]
    assert steps["new"].conversion is None
    assert steps["mql"].conversion == pytest.approx(3 / 4)
    assert steps["sal"].conversion == pytest.approx(2 / 3)
    assert steps["sql"].conversion == pytest.approx(1 / 2)
    assert steps["won"].conversion == pytest.approx(1.0)
    assert funnel.overall == pytest.approx(1 / 4)
    # new→MQL took 1 h, 3 h and 5 h; MQL→SAL 2 h twice; SAL→SQL 24 h; SQL→won 24 h.
    assert steps["mql"].median_seconds == pytest.approx(3 * 3600, abs=1)
    assert steps["sal"].median_seconds == pytest.approx(2 * 3600, abs=1)
    assert steps["sql"].median_seconds == pytest.approx(24 * 3600, abs=1)
    assert steps["won"].median_seconds == pytest.approx(24 * 3600, abs=1)
    assert funnel.current == {"won": 1, "recycled": 1, "mql": 1, "new": 1}


def test_median_of_an_even_count_is_the_mean_of_the_middle_two(app):
    form_id = factories.form(app)
    a = lead_at(app, NOW - 3 * DAY, form_id)
    b = lead_at(app, NOW - 3 * DAY, form_id)
    move(app, a, "mql", NOW - 3 * DAY + 2 * HOUR)
    move(app, b, "mql", NOW - 3 * DAY + 6 * HOUR)
    clock.freeze(NOW)
    with uow(app) as s:
        funnel = reports.funnel(s, reports.Window.last_days(30))
    assert funnel.steps[1].median_seconds == pytest.approx(4 * 3600, abs=1)


def test_funnel_filters_by_form_and_source_and_period(app, world):
    with uow(app) as s:
        by_form = reports.funnel(s, reports.Window.last_days(30, form=world["sidebar"]))
        by_source = reports.funnel(s, reports.Window.last_days(30, utm_source="google"))
        ninety = reports.funnel(s, reports.Window.last_days(90))
        empty = reports.funnel(s, reports.Window.last_days(30, form="nosuchform"))
    assert [st.reached for st in by_form.steps] == [2, 1, 0, 0, 0]
    assert [st.reached for st in by_source.steps] == [2, 2, 2, 1, 1]
    assert ninety.steps[0].reached == 5
    assert [st.reached for st in empty.steps] == [0, 0, 0, 0, 0]
    assert empty.overall is None
    assert all(st.median_seconds is None for st in empty.steps)


def test_sources_show_quality_reject_reasons_and_suspects(app, world):
    with uow(app) as s:
        rows = {r.key: r for r in reports.sources(s, reports.Window.last_days(30))}
        forms = {r.key: r for r in reports.sources(s, reports.Window.last_days(30), by="form")}
    assert set(rows) == {"google", "newsletter", "-"}
    google = rows["google"]
    assert (google.leads, google.mql, google.sal, google.suspect) == (2, 2, 2, 0)
    assert google.rejected == {"no_budget": 1}
    assert google.mql_share == 1.0
    assert (rows["newsletter"].leads, rows["newsletter"].mql, rows["newsletter"].sal) == (1, 1, 0)
    unknown = rows["-"]
    assert (unknown.leads, unknown.suspect, unknown.suspect_share) == (1, 1, 1.0)
    assert forms[world["footer"]].leads == 2
    assert forms[world["sidebar"]].leads == 2
    assert forms[world["sidebar"]].suspect == 1
    with pytest.raises(ValueError, match="grouping"), uow(app) as s:
        reports.sources(s, reports.Window.last_days(30), by="email")  # type: ignore[arg-type]


def test_sources_are_bounded_biggest_first(app, world):
    with uow(app) as s:
        rows = reports.sources(s, reports.Window.last_days(30), limit=1)
    assert [r.key for r in rows] == ["google"]


def test_leads_per_day_by_form_in_the_instance_time_zone(app, world):
    # 23:30 UTC on 8 March is half past midnight on 9 March in Berlin.
    late = lead_at(app, dt.datetime(2026, 3, 8, 23, 30, tzinfo=dt.UTC), world["footer"])
    assert late
    clock.freeze(NOW)
    with uow(app) as s:
        series = reports.leads_per_day(s, days=30, zone=BERLIN)
        utc = reports.leads_per_day(s, days=30, zone=ZoneInfo("UTC"))
        ninety = reports.leads_per_day(s, days=90, zone=BERLIN)
    assert len(series.days) == 30
    assert series.days[-1] == dt.date(2026, 3, 10)
    assert series.days[0] == dt.date(2026, 2, 9)
    footer = dict(zip(series.days, series.by_form[world["footer"]], strict=True))
    sidebar = dict(zip(series.days, series.by_form[world["sidebar"]], strict=True))
    assert footer[dt.date(2026, 3, 5)] == 2
    assert footer[dt.date(2026, 3, 9)] == 1
    assert sidebar[dt.date(2026, 3, 8)] == 1
    assert sidebar[dt.date(2026, 3, 9)] == 1
    assert series.total == 5
    assert series.form_names == {world["footer"]: "Footer", world["sidebar"]: "Sidebar"}
    utc_footer = dict(zip(utc.days, utc.by_form[world["footer"]], strict=True))
    assert utc_footer[dt.date(2026, 3, 8)] == 1  # the same lead on its UTC day
    assert ninety.total == 6  # the lead from 40 days ago as well
    assert sum(series.totals) == series.total


def test_leads_per_day_of_an_empty_instance_has_every_day_at_zero(app):
    clock.freeze(NOW)
    with uow(app) as s:
        series = reports.leads_per_day(s, days=30, zone=BERLIN)
    assert series.by_form == {}
    assert series.totals == [0] * 30
    assert series.total == 0


def test_bot_days_sum_verdicts_per_day(app):
    from capture import bots
    from capture.models import Form
    from leadvault import counters

    form_id = factories.form(app)
    clock.freeze(NOW - DAY)
    with uow(app) as s:
        form = s.scalars(sa.select(Form).where(Form.public_id == form_id)).one()
        bots.record_bot(s, form, bots.Verdict.HONEYPOT)
        bots.record_bot(s, form, bots.Verdict.HONEYPOT)
        counters.increment(s, f"{bots.COUNTER_PREFIX}too_fast.{form_id}")
    clock.freeze(NOW)
    with uow(app) as s:
        days = operations.bot_days(s, days=7)
    assert [d.day for d in days][-1] == NOW.date()
    assert len(days) == 7
    yesterday = days[-2]
    assert (yesterday.dropped, yesterday.accepted) == (2, 1)
    assert yesterday.reasons == {"honeypot": 2, "too_fast": 1}
    assert (days[-1].dropped, days[-1].accepted, days[-1].reasons) == (0, 0, {})


def test_queue_health_counts_queued_retrying_failed_and_the_oldest(app):
    factories.lead(app, confirmed=False)  # queues one opt-in mail
    with uow(app) as s:
        s.execute(sa.delete(OutboxMessage))
        s.execute(sa.delete(InboxItem))
        base = {"template": "t", "payload": b"x", "payload_owner": "o"}
        s.add_all(
            [
                OutboxMessage(**base, created_at=NOW - 2 * HOUR),
                OutboxMessage(**base, attempts=2, created_at=NOW - HOUR),
                OutboxMessage(**base, status=OutboxStatus.FAILED, attempts=9, created_at=NOW),
                OutboxMessage(**base, status=OutboxStatus.SENT, created_at=NOW - DAY),
                InboxItem(
                    kind="k",
                    payload=b"x",
                    payload_owner="o",
                    payload_key=b"k",
                    payload_key_version=1,
                    status=InboxStatus.FAILED,
                    received_at=NOW - 3 * HOUR,
                ),
            ]
        )
    with uow(app) as s:
        outbox, inbox = operations.queue_health(s)
    assert (outbox.name, outbox.queued, outbox.retrying, outbox.failed) == ("outbox", 2, 1, 1)
    assert outbox.oldest == NOW - 2 * HOUR
    assert outbox.age(NOW) == 2 * HOUR
    assert (inbox.name, inbox.queued, inbox.retrying, inbox.failed) == ("inbox", 0, 0, 1)
    assert inbox.oldest is None
    assert inbox.age(NOW) is None


def statements_of(app: Any, work: Callable[[Any], object]) -> list[str]:
    """The SQL statements (lower case) that ``work(session)`` sends, in one unit of work."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lower())

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        with uow(app) as s:
            work(s)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    return statements


def test_reports_never_load_leads(app, world):
    """Aggregates only: no statement selects a lead's sealed columns."""

    def work(s: Any) -> None:
        reports.funnel(s, reports.Window.last_days(30))
        reports.sources(s, reports.Window.last_days(30))
        reports.leads_per_day(s, days=90, zone=BERLIN)

    statements = statements_of(app, work)
    assert statements
    for statement in statements:
        assert "leads.email" not in statement
        assert "wrapped_key" not in statement
        assert "lead_attributes" not in statement
