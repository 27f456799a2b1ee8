"""admin.rollup: the dashboard's daily aggregates give exactly what admin.reports computes
from the source tables, on both databases, after every kind of change.

The leads are made and moved through the services (the world of tests/test_reports.py:
forms, UTM sources, a suspect address, stage changes, a rejected handoff), so the
aggregates are kept by the hooks alone; then erasure, a suspect flag set later, a lead
imported without a form, and a rebuild in another time zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from admin import reports, rollup, rollup_reports
from admin.models import ReportDay, ReportLead, ReportState
from leadvault import clock
from tests import factories
from tests.factories import uow
from tests.test_reports import (
    BERLIN,
    DAY,
    HOUR,
    NOW,
    lead_at,
    move,
    reject,
    statements_of,
    world,
)
from tests.test_throughput import whole_batches

UTC = ZoneInfo("UTC")
__all__ = ["whole_batches", "world"]  # fixtures of tests/test_reports.py, test_throughput.py


def from_sources(s: Any, days: int, zone: ZoneInfo) -> tuple[Any, Any, Any]:
    """What the dashboard showed before the aggregates: admin.reports on the source tables."""
    series = reports.leads_per_day(s, days=days, zone=zone, now=NOW)
    since = dt.datetime.combine(series.days[0], dt.time(), zone).astimezone(dt.UTC)
    funnel, sources = reports.overview(s, reports.Window(since=since), limit=20)
    return series, funnel, sources


def assert_same(app: Any, zone: ZoneInfo = UTC) -> None:
    clock.freeze(NOW)
    for days in reports.PERIODS:
        with uow(app) as s:
            assert rollup_reports.usable(s, zone)
            fast = rollup_reports.lead_reports(s, days=days, zone=zone, now=NOW, limit=20)
            slow = from_sources(s, days, zone)
        assert fast[0] == slow[0], days  # leads per day by form, names
        fast_steps = [dataclasses.astuple(step) for step in fast[1].steps]
        slow_steps = [dataclasses.astuple(step) for step in slow[1].steps]
        assert [step[:3] for step in fast_steps] == [step[:3] for step in slow_steps]
        # Medians: seconds from Python's datetimes here, SQL arithmetic there (julianday).
        for fast_step, slow_step in zip(fast_steps, slow_steps, strict=True):
            assert fast_step[3] == pytest.approx(slow_step[3], abs=0.01)
        assert fast[1].window == slow[1].window
        assert fast[2] == slow[2], days  # sources: leads, MQL, SAL, suspect, reject reasons


def test_aggregates_match_the_source_tables(app, world):
    assert_same(app)
    with uow(app) as s:
        series, funnel, sources = rollup_reports.lead_reports(
            s, days=30, zone=UTC, now=NOW, limit=20
        )
    # The world as tests/test_reports.py worked it out by hand.
    assert [st.reached for st in funnel.steps] == [4, 3, 2, 1, 1]
    assert funnel.steps[1].median_seconds == pytest.approx(3 * 3600, abs=1)
    google = next(row for row in sources if row.key == "google")
    assert (google.leads, google.mql, google.sal, google.rejected) == (2, 2, 2, {"no_budget": 1})
    assert series.total == 4


def test_later_changes_move_the_aggregates(app, world):
    from leadvault import leads
    from scoring import stages

    one, two, three, _four = world["leads"]
    move(app, three, "sal", NOW - HOUR)
    reject(app, three, "wrong_person", NOW - HOUR / 2)
    with uow(app) as s:  # enrichment later finds the address suspect
        stages.state_of(s, two, for_update=True).suspect = True
    lead_at(app, NOW - 3 * DAY, world["sidebar"], source={"utm_source": "partner"})
    with uow(app) as s:
        leads.erase(s, leads.get(s, one), actor="test", reason="request")
    assert_same(app)
    with uow(app) as s:
        _, funnel, sources = rollup_reports.lead_reports(s, days=30, zone=UTC, now=NOW, limit=20)
    assert [st.reached for st in funnel.steps] == [4, 2, 2, 0, 0]
    assert {row.key: row.leads for row in sources} == {
        "google": 1,
        "newsletter": 1,
        "partner": 1,
        "-": 1,
    }


def test_a_lead_without_a_form_is_counted(app):
    """A lead stored without a submission (as an import stores one) has no scoring state."""
    from leadvault import leads

    clock.freeze(NOW - 2 * DAY)
    with uow(app) as s:
        lead, created = leads.get_or_create(s, factories.unique_email(), language="en")
        assert created
    assert_same(app)
    with uow(app) as s:
        series, _, sources = rollup_reports.lead_reports(s, days=30, zone=UTC, now=NOW, limit=20)
        assert s.get(ReportLead, lead.id) is not None
    assert series.by_form == {"-": [0] * 27 + [1, 0, 0]}
    assert [row.key for row in sources] == ["-"]


def test_rebuild_counts_days_in_the_instance_zone(app, world):
    # 23:30 UTC on 8 March is half past midnight on 9 March in Berlin.
    lead_at(app, dt.datetime(2026, 3, 8, 23, 30, tzinfo=dt.UTC), world["footer"])
    with uow(app) as s:
        assert rollup.rebuild(s, BERLIN) == 6
    with uow(app) as s:
        assert not rollup_reports.usable(s, UTC)
    assert_same(app, BERLIN)
    move(app, world["leads"][2], "sal", NOW - HOUR)  # kept in Berlin days from now on
    assert_same(app, BERLIN)


def test_cli_rebuild_writes_the_aggregates_afresh(make_app, world, app):
    from leadvault.cli import cli

    with uow(app) as s:
        s.execute(sa.delete(ReportDay))  # as if they had gone astray
    berlin = make_app(time_zone="Europe/Berlin")
    result = CliRunner().invoke(cli, ["dashboard", "rebuild"], obj=berlin)
    assert result.exit_code == 0, result.output
    assert "Counting leads into the dashboard" in result.output
    assert "hold 5 leads, days counted in Europe/Berlin" in result.output
    with uow(app) as s:
        assert s.get(ReportState, 1).time_zone == "Europe/Berlin"
    assert_same(app, BERLIN)


def test_the_dashboard_reads_only_aggregates(app, world):
    """No statement of the dashboard's lead reports touches leads or their history."""
    statements = statements_of(
        app, lambda s: rollup_reports.lead_reports(s, days=90, zone=UTC, now=NOW, limit=20)
    )
    assert statements
    for statement in statements:
        assert "from leads" not in statement
        assert "stage_history" not in statement
        assert "lead_scores" not in statement


def test_leads_stored_by_the_workers_batch_are_counted(app, whole_batches):
    """Submissions queued as the endpoint queues them, stored by the worker's batch."""
    from tests.conftest import process
    from tests.test_throughput import submit

    clock.freeze(NOW - DAY)
    form_id = factories.form(app, name="Batch")
    submit(app, form_id, [factories.unique_email() for _ in range(3)])
    assert process(app) == 3
    assert_same(app)
    with uow(app) as s:
        series, funnel, _ = rollup_reports.lead_reports(s, days=30, zone=UTC, now=NOW, limit=20)
    assert series.by_form[form_id][-2] == 3
    assert funnel.steps[0].reached == 3
