"""The MQL threshold means "at least", and `scoring explain` shows stage and grade."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from click.testing import CliRunner

from consent.ledger import RequestMeta
from leadvault import clock
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.db import unit_of_work
from scoring import events, rules, scores
from scoring.models import LeadScore, Stage
from tests import factories

META = RequestMeta(ip="127.0.0.1", user_agent="pytest")
PROFILE = {
    "first_name": "Ada",
    "job_title": "Head of Engineering",
    "country": "DE",
    "company_size": "250-999",
}
# 20 + 5 + 5 + 5 = exactly the example rules' mql_score of 35.
EXACTLY_35 = [
    ("page_view", {"category": "pricing"}),
    ("page_view", {"category": "product"}),
    ("qr_scan", {}),
    ("qr_scan", {}),
]


def _lead(app, email: str) -> uuid.UUID:
    return factories.lead(app, email, profile=PROFILE, purposes=["newsletter"], confirmed=False)


def _state(app, lead_id: uuid.UUID) -> LeadScore:
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        row = s.get(LeadScore, lead_id)
        s.expunge(row)
        return row


@pytest.mark.parametrize("path", ["internal", "api-batch"])
def test_a_score_of_exactly_the_threshold_at_the_event_makes_an_mql(app, path):
    lead_id = _lead(app, f"exact.{uuid.uuid4().hex[:6]}@engines.example")
    # All four events happen at one moment: the score then is exactly 35;
    # decayed to any later instant it is 34.99999….
    moment = clock.now()
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        if path == "internal":
            for type_, props in EXACTLY_35:
                events.record_event(s, lead_id, type_, props, moment)
        else:
            events.ingest(
                s, [events.RawEvent(t, moment, p, lead_id=lead_id) for t, p in EXACTLY_35]
            )
    state = _state(app, lead_id)
    assert state.score == pytest.approx(35, abs=1e-9)
    assert state.fit_grade in {"A", "B", "C"}
    assert state.stage == Stage.MQL


def test_one_point_short_stays_new(app):
    lead_id = _lead(app, f"short.{uuid.uuid4().hex[:6]}@engines.example")
    moment = clock.now()
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        for type_, props in EXACTLY_35[:3]:  # 30 points
            events.record_event(s, lead_id, type_, props, moment)
        events.record_event(s, lead_id, "product_image_click", {}, moment)  # 33
        events.record_event(s, lead_id, "page_view", {"category": "blog"}, moment)  # 34
    assert _state(app, lead_id).stage == Stage.NEW


def test_scoring_explain_shows_stage_and_grade(app):
    email = f"explain.{uuid.uuid4().hex[:6]}@engines.example"
    lead_id = _lead(app, email)
    moment = clock.now()
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        for type_, props in EXACTLY_35:
            events.record_event(s, lead_id, type_, props, moment)
        explained = scores.explain(s, lead_id, rules.active(s))
    settings = runtime(app).settings
    env = {
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
    }
    result = CliRunner().invoke(cli, ["scoring", "explain", "--email", email], env=env, obj=app)
    assert result.exit_code == 0, result.output
    state = _state(app, lead_id)
    lines = result.output.splitlines()
    assert f"stage {Stage.MQL}" in lines
    assert any(line.split()[:2] == ["grade", state.fit_grade] for line in lines)
    assert any(line.startswith(f"score {explained.score:.2f}"[:9]) for line in lines)
    assert any(line.split()[:1] == ["pricing_page"] for line in lines)


def test_a_late_backfill_of_old_events_does_not_qualify(app):
    """Events sent in long after they happened count at today's decayed value."""
    start = clock.now() - dt.timedelta(days=90)
    clock.freeze(start)
    lead_id = _lead(app, f"old.{uuid.uuid4().hex[:6]}@engines.example")
    clock.freeze(None)
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        events.ingest(s, [events.RawEvent(t, start, p, lead_id=lead_id) for t, p in EXACTLY_35])
    assert _state(app, lead_id).stage == Stage.NEW
