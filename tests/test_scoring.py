"""Scoring: events, rules, decayed scores with breakdown, stages, routing, handoff."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from capture import definition_service, definitions
from consent import rights
from consent.ledger import RequestMeta
from leadvault import api, clock, counters, leads
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.db import unit_of_work
from scoring import (
    enrichment,
    events,
    handoff,
    jobs,
    recompute,
    routing,
    rules,
    sales_team,
    scores,
    tracking,
)
from scoring.models import Event, Handoff, LeadScore, RuleScore, Stage, StageChange
from tests import factories
from tests.conftest import deliver

META = RequestMeta(ip="127.0.0.1", user_agent="pytest")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PROFILE_DE = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines GmbH",
    "job_title": "Head of Engineering",
    "country": "DE",
    "company_size": "250-999",
}
SCHEMA = Path(__file__).resolve().parents[1] / "consent" / "static" / "access-export.v1.json"


uow = factories.uow


def contact_form(app) -> str:
    with uow(app) as s:
        fields = [definitions.FieldSpec(n, False) for n in definitions.PROFILE_FIELDS]
        purposes = [
            definitions.PurposeSpec(p, False)
            for p in ("newsletter", "sales_contact", "tracking", "whitepaper")
        ]
        form = definition_service.create_form(
            s, name="Contact", kind="contact", fields=fields, purposes=purposes
        )
        return form.public_id


def new_lead(app, form_id, email, *, profile=None, purposes=("newsletter",), confirm=True):
    return factories.lead(
        app,
        email,
        form_id=form_id,
        profile=profile,
        purposes=purposes,
        confirmed=confirm,
        source={"utm_source": "linkedin", "utm_campaign": "spring"},
    )


def record(app, lead_id, type_, props=None, at=None):
    with uow(app) as s:
        return events.record_event(s, lead_id, type_, props or {}, at or clock.now())


def state(app, lead_id) -> LeadScore:
    with uow(app) as s:
        row = s.get(LeadScore, lead_id)
        s.expunge(row)
        return row


def current_score(app, lead_id) -> float:
    with uow(app) as s:
        return scores.explain(s, lead_id, rules.active(s)).score


SEED = [
    ("qr_scan", {}),
    ("product_image_click", {}),
    ("page_view", {"category": "product"}),
    ("page_view", {"category": "pricing"}),
]


# --- rules -----------------------------------------------------------------------


def test_example_rules_hold_the_common_defaults():
    parsed = rules.parse(rules.example_text())
    points = {rule.name: rule.points for rule in parsed.engagement}
    assert points["qr_scan"] == 5
    assert points["product_image_click"] == 3
    assert points["newsletter_signup"] == 7
    assert points["blog_visit"] == 1
    assert points["product_page"] == 5
    assert points["pricing_page"] == 20
    assert points["careers_page"] == -10
    assert parsed.mql_score == 35
    assert parsed.half_life_days == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("points = 20", 'points = "many"'), "points must be a number"),
        (('event = "qr_scan"', 'event = "QR scan"'), "event must be"),
        (('mql_min_grade = "C"', 'mql_min_grade = "E"'), "mql_min_grade"),
        (('when = { region = "DACH" }', 'when = { planet = "mars" }'), "unknown condition"),
        (('[[fit]]\nname = "free_mail"', '[[fit]]\nname = "company_domain"'), "used twice"),
        (("half_life_days = 30", "half_life_days = = 30"), "Invalid"),
    ],
)
def test_rule_errors_name_the_line(change, message):
    text = rules.example_text()
    assert change[0] in text
    line = text[: text.index(change[0])].count("\n") + 1 + change[1].count("\n")
    with pytest.raises(rules.RulesError) as caught:
        rules.parse(text.replace(change[0], change[1], 1), source="rules.toml")
    assert str(caught.value).startswith(f"rules.toml:{line}:"), str(caught.value)
    assert message in str(caught.value)


def cli_env(app) -> dict[str, str]:
    settings = runtime(app).settings
    return {
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
    }


def test_scoring_load_stores_versions_and_refuses_bad_files(app, tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text(rules.example_text().replace("points = 20", "points = -", 1))
    result = runner.invoke(cli, ["scoring", "load", str(bad)], env=cli_env(app), obj=app)
    assert result.exit_code == 1
    assert f"{bad}:67:" in result.output
    good = tmp_path / "rules.toml"
    good.write_text(rules.example_text().replace("mql_score = 35", "mql_score = 50"))
    for version in (1, 2):
        result = runner.invoke(cli, ["scoring", "load", str(good)], env=cli_env(app), obj=app)
        assert result.exit_code == 0, result.output
        assert f"version {version} active" in result.output
    with uow(app) as s:
        assert rules.active(s).mql_score == 50
        assert [(r.version, r.active) for r in rules.versions(s)] == [(1, False), (2, True)]


# --- scores ----------------------------------------------------------------------


def test_seed_example_makes_an_mql_and_careers_lowers_the_score(app):
    form_id = contact_form(app)
    lead_id = new_lead(app, form_id, "ada@engines.example", profile=PROFILE_DE)
    assert state(app, lead_id).fit_grade == "A"
    assert current_score(app, lead_id) == pytest.approx(7)  # newsletter sign-up
    for type_, props in SEED[:3]:
        record(app, lead_id, type_, props)
    assert state(app, lead_id).stage == Stage.NEW
    record(app, lead_id, *SEED[3])
    assert current_score(app, lead_id) == pytest.approx(40)
    assert state(app, lead_id).stage == Stage.MQL
    record(app, lead_id, "page_view", {"category": "careers"})
    assert current_score(app, lead_id) == pytest.approx(30)
    with uow(app) as s:
        [change] = s.scalars(sa.select(StageChange).where(StageChange.lead_id == lead_id))
        assert (change.from_stage, change.to_stage, change.cause_kind, change.cause) == (
            "new",
            "mql",
            "event",
            "page_view",
        )
        # Without sales_contact consent the lead stays MQL: no handoff.
        assert handoff.open_handoff(s, lead_id) is None


def test_the_same_events_ninety_days_old_do_not_qualify(app):
    form_id = contact_form(app)
    lead_id = new_lead(app, form_id, "old@engines.example", profile=PROFILE_DE, confirm=False)
    old = clock.now() - dt.timedelta(days=90)
    record(app, lead_id, "optin_confirmed", {"purpose": "newsletter"}, old)
    for type_, props in SEED:
        record(app, lead_id, type_, props, old)
    assert current_score(app, lead_id) == pytest.approx(40 / 8)
    assert state(app, lead_id).stage == Stage.NEW


def test_caps_limit_a_rule_per_day(app):
    form_id = contact_form(app)
    lead_id = new_lead(app, form_id, "cap@engines.example", confirm=False)
    for _ in range(5):
        record(app, lead_id, "page_view", {"category": "pricing"})
    assert current_score(app, lead_id) == pytest.approx(20)  # cap_per_day = 20


def test_breakdown_sums_to_the_score_and_matches_a_recompute(app):
    import random

    form_id = contact_form(app)
    shuffled = new_lead(app, form_id, "sum@engines.example", profile=PROFILE_DE)
    ordered = new_lead(app, form_id, "sum2@engines.example", profile=PROFILE_DE)
    rng = random.Random(7)
    kinds = [*SEED, ("page_view", {"category": "careers"}), ("page_view", {"category": "blog"})]
    now = clock.now()
    batch = [
        (*rng.choice(kinds), now - dt.timedelta(hours=rng.uniform(0, 80 * 24))) for _ in range(60)
    ]
    for type_, props, at in batch:  # out of order, over 80 days, some days over their cap
        record(app, shuffled, type_, props, at)
    for type_, props, at in sorted(batch, key=lambda item: item[2]):
        record(app, ordered, type_, props, at)
    with uow(app) as s:
        explained = {lead: scores.explain(s, lead, rules.active(s)) for lead in (shuffled, ordered)}
    for result in explained.values():
        assert len(result.breakdown) >= 4
        assert abs(sum(result.breakdown.values()) - result.score) < 1e-9
    # Replaying the events in time order gives the same numbers (the cap may pick
    # other events of a day when they arrive out of order, so compare the ordered lead).
    with uow(app) as s:
        recompute.recompute_chunk(s, [shuffled, ordered])
    with uow(app) as s:
        again = scores.explain(s, ordered, rules.active(s), at=explained[ordered].at)
        replayed = scores.explain(s, shuffled, rules.active(s), at=explained[ordered].at)
    assert abs(again.score - explained[ordered].score) < 1e-9
    for rule, value in explained[ordered].breakdown.items():
        assert abs(again.breakdown[rule] - value) < 1e-9
    assert replayed.score == pytest.approx(again.score, rel=1e-6)  # sign-up ms apart
    assert abs(sum(replayed.breakdown.values()) - replayed.score) < 1e-9


def test_recompute_command_applies_new_rules(app, tmp_path):
    form_id = contact_form(app)
    lead_id = new_lead(app, form_id, "re@engines.example", confirm=False)
    record(app, lead_id, "page_view", {"category": "blog"})
    path = tmp_path / "rules.toml"
    path.write_text(rules.example_text().replace("points = 1\n", "points = 4\n", 1))
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["scoring", "load", str(path)], env=cli_env(app), obj=app).exit_code == 0
    )
    result = runner.invoke(cli, ["scoring", "recompute"], env=cli_env(app), obj=app)
    assert result.exit_code == 0, result.output
    assert "leads recomputed" in result.output
    assert current_score(app, lead_id) == pytest.approx(4)


# --- the event endpoints -------------------------------------------------------------


def make_token(app, scopes=("events:write",)) -> str:
    with uow(app) as s:
        return api.create_token(s, f"t-{uuid.uuid4().hex[:6]}", list(scopes))


def test_batch_endpoint_stores_sealed_events_counts_unknown_and_names_problems(app, client):
    form_id = contact_form(app)
    lead_id = new_lead(app, form_id, "api@engines.example", confirm=False)
    token = make_token(app)
    auth = {"Authorization": f"Bearer {token}"}
    body = {
        "events": [
            {
                "type": "page_view",
                "email": "API@engines.example",
                "properties": {"category": "pricing"},
            },
            {"type": "qr_scan", "lead_id": str(lead_id)},
            {"type": "teleported", "lead_id": str(lead_id)},
            {"type": "optin_confirmed", "lead_id": str(lead_id), "properties": {"purpose": "x"}},
            {"type": "qr_scan", "email": "nobody@engines.example"},
        ]
    }
    assert client.post("/api/v1/events", json=body).status_code == 401
    reply = client.post("/api/v1/events", json=body, headers=auth)
    assert reply.status_code == 202, reply.get_json()
    # Internal types (opt-in confirmed …) cannot be sent from outside.
    assert reply.get_json() == {"accepted": 2, "unknown_type": 2, "unknown_lead": 1}
    assert current_score(app, lead_id) == pytest.approx(25)
    with uow(app) as s:
        assert counters.total(s, events.UNKNOWN_TYPE) == 2
        rows = list(
            s.scalars(sa.select(Event).where(Event.lead_id == lead_id, Event.source == "api"))
        )
        sealed = [r.properties for r in rows if r.properties is not None]
        assert len(sealed) == 1 and b"pricing" not in sealed[0]

    bad = {"events": [{"type": "qr_scan", "lead_id": str(lead_id)}, {"lead_id": str(lead_id)}]}
    reply = client.post("/api/v1/events", json=bad, headers=auth)
    assert reply.status_code == 422
    assert reply.get_json()["error"].startswith("events[1].type:")
    reply = client.post("/api/v1/events", data="not json", headers=auth)
    assert reply.status_code == 400
    reply = client.post(
        "/api/v1/events",
        json={"events": [{"type": "qr_scan", "lead_id": str(lead_id), "email": "a@b.example"}]},
        headers=auth,
    )
    assert reply.status_code == 422 and "exactly one" in reply.get_json()["error"]
    assert current_score(app, lead_id) == pytest.approx(25)  # nothing of the bad batches


def test_browser_events_need_the_tracking_consent_and_a_signed_token(app, client):
    form_id = contact_form(app)
    lead_id = new_lead(app, form_id, "web@engines.example", purposes=("newsletter",))
    with uow(app) as s:
        token = tracking.tracking_token(s, lead_id)
    body = {"token": token, "type": "page_view", "properties": {"category": "pricing"}}
    headers = {"Origin": "https://www.example.com"}
    reply = client.post(
        "/api/v1/track", data=json.dumps(body), headers=headers, content_type="text/plain"
    )
    assert reply.status_code == 403
    assert reply.headers["Access-Control-Allow-Origin"] == "https://www.example.com"
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).where(Event.source == "browser")) == 0
    new_lead(app, form_id, "web@engines.example", purposes=("tracking",))
    reply = client.post(
        "/api/v1/track", data=json.dumps(body), headers=headers, content_type="text/plain"
    )
    assert reply.status_code == 202, reply.get_json()
    assert reply.get_json() == {"status": "stored"}
    assert current_score(app, lead_id) == pytest.approx(27)
    forged = {**body, "token": factories.tampered(token)}
    assert client.post("/api/v1/track", json=forged).status_code == 403
    assert client.post("/api/v1/track", json={**body, "type": "Bad Type"}).status_code == 422
    unknown = client.post("/api/v1/track", json={**body, "type": "teleported"})
    assert unknown.status_code == 202 and unknown.get_json() == {"status": "ignored"}
    assert client.options("/api/v1/track", headers=headers).status_code == 204


def test_browser_events_are_rate_limited_per_ip(make_app, smtp_server):
    from tests.conftest import _smtp_config

    app = make_app(smtp_url=_smtp_config(smtp_server.port), rate_limit_track="3/minute")
    client = app.test_client()
    form_id = contact_form(app)
    lead_id = new_lead(app, form_id, "busy@engines.example", purposes=("tracking",))
    with uow(app) as s:
        token = tracking.tracking_token(s, lead_id)
    body = {"token": token, "type": "page_view"}
    headers = {"Origin": "https://www.example.com"}
    statuses = [client.post("/api/v1/track", json=body).status_code for _ in range(3)]
    refused = client.post("/api/v1/track", json=body, headers=headers)
    assert statuses == [202] * 3
    assert refused.status_code == 429
    assert "too many" in refused.get_json()["error"]
    assert refused.headers["Access-Control-Allow-Origin"] == "https://www.example.com"
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).where(Event.source == "browser")) == 3
    # Other addresses keep their own count.
    other = client.post("/api/v1/track", json=body, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 202


# --- plausibility and enrichment --------------------------------------------------------


class StubProvider:
    name = "stub"
    cost = 1.0

    def __init__(self):
        self.calls: list[str] = []

    def enrich(self, domain, attributes):
        self.calls.append(domain)
        return {"industry": "software"}


def test_disposable_address_is_suspect_and_the_paid_provider_is_not_called(app):
    provider = StubProvider()
    enrichment.register_provider(provider)
    try:
        form_id = contact_form(app)
        fake = new_lead(app, form_id, "x@mailinator.com", profile=PROFILE_DE)
        real = new_lead(
            app, form_id, "info@engines.example", profile={**PROFILE_DE, "phone": "+49 30 901820"}
        )
        with uow(app) as s:
            assert jobs.enrich_pending(s) == 1
        assert provider.calls == ["engines.example"]
    finally:
        enrichment.unregister_provider(provider)
    suspect = state(app, fake)
    assert suspect.suspect and "disposable" in suspect.flags and suspect.fit_grade == "D"
    good = state(app, real)
    assert not good.suspect
    assert {"company_mail", "role_address", "phone_valid", "enriched:stub"} <= set(good.flags)
    with uow(app) as s:
        assert leads.attributes_of(s, leads.get(s, real))["industry"] == "software"
    # A suspect lead does not become an MQL, whatever its score.
    for type_, props in SEED:
        record(app, fake, type_, props)
    assert state(app, fake).stage == Stage.NEW


# --- routing and handoff, end to end ------------------------------------------------------


def setup_sales(app):
    with uow(app) as s:
        routing.add_team(s, "dach", "round_robin")
        routing.add_person(s, email="anna@sales.example", name="Anna", language="de")
        routing.add_person(s, email="ben@sales.example", name="Ben", language="en")
        routing.add_member(s, "dach", "anna@sales.example")
        routing.add_member(s, "dach", "ben@sales.example")


def qualify(app, form_id, email, country="DE"):
    lead_id = new_lead(
        app,
        form_id,
        email,
        profile={**PROFILE_DE, "country": country},
        purposes=("newsletter", "sales_contact"),
    )
    for type_, props in SEED:
        record(app, lead_id, type_, props)
    return lead_id


def mails_to(smtp_server, address):
    return [m for m in smtp_server.messages if m["To"] == address]


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def test_handoff_end_to_end_routing_accept_round_robin_and_sla(app, client, smtp_server):
    setup_sales(app)
    form_id = contact_form(app)
    first = qualify(app, form_id, "lead1@engines.example")
    assert state(app, first).stage == Stage.MQL
    deliver(app)
    [mail] = mails_to(smtp_server, "anna@sales.example")
    assert mail["Content-Language"] == "de"
    body = text_of(mail)
    assert "lead1@engines.example" in body and "Head of Engineering" in body
    # Each rule by the rules file's title in the salesperson's language, not its name.
    assert re.search(r"\n  Preisseite angesehen: 20\s", body) and "Fit-Note: A" in body
    assert "Entscheider laut Position: 15" in body and "pricing_page" not in body
    assert "utm_source=linkedin" in body
    assert "Version 1" in body  # the consent line names the text version
    accept, reject = re.findall(r"http://\S+/h/\S+", body)[:2]
    assert accept.endswith("/accept") and reject.endswith("/reject")

    page = client.get(path_of(accept))
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert state(app, first).stage == Stage.MQL  # GET changes nothing
    csrf = CSRF.search(page.get_data(as_text=True)).group(1)
    done = client.post(path_of(accept), data={"csrf_token": csrf})
    assert done.status_code == 200
    assert state(app, first).stage == Stage.SAL
    with uow(app) as s:
        changes = [
            (c.to_stage, c.cause_kind)
            for c in s.scalars(
                sa.select(StageChange).where(StageChange.lead_id == first).order_by(StageChange.id)
            )
        ]
    assert changes == [("mql", "event"), ("sal", "person")]

    # The same signed page asks the BANT questions; SQL needs all four answered yes.
    page_url = path_of(accept).rsplit("/", 1)[0]
    sql = client.post(page_url + "/sql", data={"csrf_token": csrf})
    assert sql.status_code == 409
    body = sql.get_data(as_text=True)
    assert "Für SQL muss hier „Ja“ stehen." in body  # Anna reads German
    assert body.count('aria-invalid="true"') == 4  # each question not answered yes
    # A question left open: 422, each open one named, nothing stored.
    partial = client.post(
        page_url + "/bant", data={"csrf_token": csrf, "need": "yes", "budget": "maybe"}
    )
    assert partial.status_code == 422
    body = partial.get_data(as_text=True)
    assert "Bitte beantworten Sie diese Frage." in body
    assert body.count('aria-invalid="true"') == 3
    assert 'id="lv-bant-budget" aria-invalid="true"' in body
    assert 'value="yes" required checked' in body  # the answer given stays chosen
    with uow(app) as s:
        assert handoff.open_handoff(s, first).bant == {}
    answered = client.post(
        page_url + "/bant",
        data={
            "csrf_token": csrf,
            "need": "yes",
            "budget": "yes",
            "authority": "unknown",
            "timeline": "yes",
        },
    )
    assert answered.status_code == 200
    assert "Ihre Antworten sind gespeichert." in answered.get_data(as_text=True)
    sql = client.post(page_url + "/sql", data={"csrf_token": csrf})
    assert sql.status_code == 409
    body = sql.get_data(as_text=True)
    assert body.count('aria-invalid="true"') == 1
    assert 'id="lv-bant-authority" aria-invalid="true"' in body
    client.post(
        page_url + "/bant",
        data={
            "csrf_token": csrf,
            "need": "yes",
            "budget": "yes",
            "authority": "yes",
            "timeline": "yes",
        },
    )
    assert client.post(page_url + "/sql", data={"csrf_token": csrf}).status_code == 200
    assert client.post(page_url + "/won", data={"csrf_token": csrf}).status_code == 200
    assert state(app, first).stage == Stage.WON

    # The next lead of the same territory goes to the next person.
    second = qualify(app, form_id, "lead2@engines.example", country="AT")
    deliver(app)
    assert len(mails_to(smtp_server, "ben@sales.example")) == 1
    with uow(app) as s:
        assert handoff.open_handoff(s, second).routing_rule == "dach"
        handoff.accept(s, handoff.open_handoff(s, second))

    # Not accepted in time: a reminder, then the next person by the same rule.
    start = clock.now()
    clock.freeze(start)
    third = qualify(app, form_id, "lead3@engines.example", country="CH")
    deliver(app)
    assert len(mails_to(smtp_server, "anna@sales.example")) == 2
    clock.freeze(start + dt.timedelta(hours=17))
    with uow(app) as s:
        assert handoff.sla_job(s) == {"reminded": 1, "reassigned": 0, "dequeued": 0}
    deliver(app)
    assert len(mails_to(smtp_server, "anna@sales.example")) == 3
    clock.freeze(start + dt.timedelta(hours=25))
    with uow(app) as s:
        assert handoff.sla_job(s) == {"reminded": 0, "reassigned": 1, "dequeued": 0}
        current = handoff.open_handoff(s, third)
        assert current.attempt == 2
        assert current.person_id == routing.person_by_email(s, "ben@sales.example").id
    deliver(app)
    assert len(mails_to(smtp_server, "ben@sales.example")) == 2
    # Anna's old link no longer accepts.
    old_link = re.findall(
        r"http://\S+/h/\S+/accept", text_of(mails_to(smtp_server, "anna@sales.example")[1])
    )[0]
    page = client.get(path_of(old_link))
    assert "wartet nicht mehr" in page.get_data(as_text=True)  # Anna reads German
    assert "lead3@engines.example" not in page.get_data(as_text=True)


def test_reject_recycles_or_disqualifies_and_the_report_shows_reasons(app, smtp_server):
    setup_sales(app)
    form_id = contact_form(app)
    one = qualify(app, form_id, "r1@engines.example")
    two = qualify(app, form_id, "r2@engines.example")
    with uow(app) as s:
        assert handoff.reject(s, handoff.open_handoff(s, one), "fake_data") == Stage.DISQUALIFIED
        assert handoff.reject(s, handoff.open_handoff(s, two), "no_budget") == Stage.RECYCLED
    assert state(app, one).stage == Stage.DISQUALIFIED
    assert state(app, two).stage == Stage.RECYCLED
    result = CliRunner().invoke(
        cli,
        ["report", "funnel", "--since", (clock.now() - dt.timedelta(days=1)).strftime("%Y-%m-%d")],
        env=cli_env(app),
        obj=app,
    )
    assert result.exit_code == 0, result.output
    assert "fake_data=1" in result.output and "no_budget=1" in result.output
    assert "linkedin:" in result.output and "mql=2" in result.output


def test_no_sales_team_means_the_queue_until_someone_is_there(app, smtp_server):
    form_id = contact_form(app)
    lead_id = qualify(app, form_id, "q@engines.example")
    with uow(app) as s:
        assert handoff.open_handoff(s, lead_id).status == "queued"
    setup_sales(app)
    with uow(app) as s:
        assert handoff.sla_job(s)["dequeued"] == 1
    deliver(app)
    assert len(mails_to(smtp_server, "anna@sales.example")) == 1


def test_absent_people_are_skipped(app, smtp_server):
    setup_sales(app)
    with uow(app) as s:
        anna = routing.named_person(s, "anna@sales.example").id
        sales_team.update_person(s, anna, actor="cli:test", absent=True)
    form_id = contact_form(app)
    qualify(app, form_id, "abs@engines.example")
    deliver(app)
    assert mails_to(smtp_server, "anna@sales.example") == []
    assert len(mails_to(smtp_server, "ben@sales.example")) == 1


def test_sales_commands(app):
    runner = CliRunner()
    env = cli_env(app)
    assert runner.invoke(cli, ["sales", "team", "add", "dach"], env=env, obj=app).exit_code == 0
    result = runner.invoke(
        cli,
        [
            "sales",
            "add",
            "--email",
            "c@sales.example",
            "--name",
            "Carla",
            "--lang",
            "de",
            "--team",
            "dach",
        ],
        env=env,
        obj=app,
    )
    assert result.exit_code == 0, result.output
    assert (
        runner.invoke(cli, ["sales", "absent", "c@sales.example"], env=env, obj=app).exit_code == 0
    )
    listing = runner.invoke(cli, ["sales", "list"], env=env, obj=app)
    assert "c@sales.example" in listing.output and "absent" in listing.output
    assert "team dach (round_robin): c@sales.example" in listing.output
    again = runner.invoke(
        cli, ["sales", "add", "--email", "c@sales.example", "--name", "C"], env=env, obj=app
    )
    assert again.exit_code == 1 and "exists already" in again.output


# --- access export and erasure --------------------------------------------------------------


def test_access_export_holds_events_scores_and_stages_and_erasure_removes_them(app):
    form_id = contact_form(app)
    lead_id = qualify(app, form_id, "gdpr@engines.example")
    with uow(app) as s:
        document = rights.access_export(s, leads.get(s, lead_id))
    jsonschema.validate(json.loads(json.dumps(document)), json.loads(SCHEMA.read_text()))
    assert {e["type"] for e in document["events"]} >= {
        "form_submitted",
        "optin_confirmed",
        "qr_scan",
    }
    assert {"category": "pricing"} in [e["properties"] for e in document["events"]]
    assert document["scores"][0]["fit_grade"] == "A"
    assert document["stage_history"][0]["to"] == "mql"
    with uow(app) as s:
        rights.erase(s, leads.get(s, lead_id))
    with uow(app) as s:
        for model in (Event, LeadScore, RuleScore, StageChange, Handoff):
            assert (
                s.scalar(
                    sa.select(sa.func.count()).select_from(model).where(model.lead_id == lead_id)
                )
                == 0
            )


def test_asset_downloads_arrive_through_the_core_signal(app):
    from leadvault import signals

    form_id = contact_form(app)
    lead_id = new_lead(app, form_id, "dl@engines.example", confirm=False)
    with uow(app) as s:
        signals.lead_event.send(
            s,
            lead_id=lead_id,
            event_type="asset_downloaded",
            properties={"asset": "a1"},
            occurred_at=clock.now(),
        )
    assert current_score(app, lead_id) == pytest.approx(5)


def test_tracking_consent_hands_the_loader_its_token(app, client, smtp_server):
    """Confirming the tracking consent offers a way back to the host page whose URL
    fragment carries the signed tracking token; that token is accepted by /api/v1/track."""
    import re

    from capture.definitions import PurposeSpec
    from tests.conftest import deliver, make_form, render_token, unique_email

    form_id = make_form(
        app, purposes=[PurposeSpec("newsletter", True), PurposeSpec("tracking", False)]
    )
    client.post(
        f"/f/{form_id}",
        json={
            "email": unique_email(),
            "consent": ["newsletter", "tracking"],
            "render_token": render_token(app, form_id),
            "page_url": "https://www.example.com/pricing?utm_source=ad#top",
        },
    )
    deliver(app)
    [mail] = smtp_server.wait_for(1)
    link = re.search(r"http://\S+/c/\S+", mail.get_body(("plain",)).get_content()).group(0)
    path = "/" + link.split("/", 3)[3]
    page = client.get(path).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    done = client.post(path, data={"csrf_token": csrf}).get_data(as_text=True)
    back = re.search(r'href="(https://www\.example\.com/pricing\?utm_source=ad#lv_t=[^"]+)"', done)
    assert back, done
    token = back.group(1).split("#lv_t=", 1)[1]
    response = client.post(
        "/api/v1/track",
        json={"token": token, "type": "page_view", "properties": {"category": "pricing"}},
    )
    assert response.status_code < 300, response.get_data(as_text=True)


def test_salespeople_are_sealed_and_rotated_with_the_key_ring(app):
    """Staff are data subjects too: no plaintext name or address, and key rotation covers them."""
    import sqlalchemy as sa

    from leadvault import keys
    from leadvault.app import runtime
    from scoring import routing

    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        routing.add_person(s, email="Zelda.Quux@sales.example", name="Zelda Quux", language="de")
    with runtime(app).session_factory() as s:
        row = s.execute(sa.text("SELECT * FROM sales_people")).one()
    dumped = repr(tuple(row))
    assert "zelda" not in dumped.lower() and "quux" not in dumped.lower()
    with app.app_context(), runtime(app).session_factory() as s:
        person = routing.person_by_email(s, " zelda.quux@SALES.example ")
        assert routing.contact(s, person) == routing.Contact(
            "zelda.quux@sales.example", "Zelda Quux"
        )
        active = runtime(app).vault.keyring.active_version
        assert keys.count_using(s, active) >= 1
