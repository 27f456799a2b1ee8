"""Signed outbound webhooks: Standard Webhooks signatures checked by the reference
implementation, retries into a receiver that recovers, consent-bound payloads,
erasure, the SSRF guard and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug.serving import WSGIRequestHandler, make_server

from consent import rights
from consent import service as consent_service
from export import delivery, transport, webhooks
from export.models import EndpointStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from leadvault import audit, clock, leads
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.models import OutboxKind, OutboxMessage, OutboxStatus
from leadvault.worker import Worker
from tests.test_scoring import META, PROFILE_DE, cli_env, contact_form, new_lead, uow

LOOPBACK = ("127.0.0.1/32",)
FAST = (0.05, 0.1, 0.2, 0.4, 0.8)  # 1.55 s in all


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


class Receiver:
    """A real HTTP server on loopback that verifies, de-duplicates and records webhooks."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self.secrets = list(secrets or [])
        self.lock = threading.Lock()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.processed: dict[str, dict[str, Any]] = {}
        self.down_for = 0  # answer 503 to this many requests (an outage)
        self.crash_after_processing = 0  # process, then answer 500 this many times
        self.status = 200
        self.location: str | None = None
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/leadvault"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        with self.lock:
            self.requests.append((headers, body))
            if self.down_for > 0:
                self.down_for -= 1
                return self._answer(start_response, "503 Service Unavailable")
            if self.location is not None:
                start_response("302 Found", [("Location", self.location)])
                return [b""]
            if self.secrets:
                try:
                    payload = Webhook(self.secrets[0]).verify(body, headers)
                except WebhookVerificationError:
                    return self._answer(start_response, "401 Unauthorized")
            else:
                payload = json.loads(body)
            # De-duplicate by webhook-id, as the specification asks receivers to.
            self.processed.setdefault(headers["webhook-id"], payload)
            if self.crash_after_processing > 0:
                self.crash_after_processing -= 1
                return self._answer(start_response, "500 Internal Server Error")
        status = {200: "200 OK", 204: "204 No Content", 410: "410 Gone", 500: "500 Oops"}
        return self._answer(start_response, status[self.status])

    @staticmethod
    def _answer(start_response: Any, status: str) -> list[bytes]:
        start_response(status, [("Content-Type", "text/plain")])
        return [b"ok" if status.startswith("2") else b"no"]

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _headers, body in self.requests]

    def wait_for(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.processed) >= count:
                    return
            time.sleep(0.02)
        raise AssertionError(f"expected {count} events, got {len(self.processed)}")


def verify_all(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every request the receiver got, verified by the reference implementation."""
    with receiver.lock:
        requests = list(receiver.requests)
    assert requests
    return [Webhook(secret).verify(body, headers) for headers, body in requests]


@pytest.fixture
def webhook_app(make_app, smtp_server):
    from tests.conftest import _smtp_config

    return make_app(
        smtp_url=_smtp_config(smtp_server.port),
        webhook_allow_networks=LOOPBACK,
        webhook_retry_schedule=FAST,
        webhook_alert_email="ops@company.example",
    )


def add_endpoint(app, url, **kwargs) -> tuple[int, str]:
    with uow(app) as s:
        endpoint, secret = webhooks.create_endpoint(s, url=url, **kwargs)
        return endpoint.id, secret


def drain(app, deliverer=None, rounds: int = 50) -> int:
    """Deliver due webhooks until none are left (waiting out short retry delays)."""
    own = deliverer is None
    deliverer = deliverer or delivery.WebhookDeliverer(app)
    total = 0
    try:
        for _ in range(rounds):
            done = deliverer.deliver_due(worker_id="test", limit=100)
            total += done
            with uow(app) as s:
                left = s.scalar(
                    sa.select(sa.func.count()).where(
                        OutboxMessage.kind == OutboxKind.WEBHOOK,
                        OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                    )
                )
            if not left:
                break
            if not done:
                time.sleep(0.05)
    finally:
        if own:
            deliverer.close()
    return total


def statuses(app) -> list[str]:
    with uow(app) as s:
        return list(
            s.scalars(
                sa.select(OutboxMessage.status)
                .where(OutboxMessage.kind == OutboxKind.WEBHOOK)
                .order_by(OutboxMessage.id)
            )
        )


# --- signatures, payloads, consent ---------------------------------------------------


def test_events_are_signed_and_carry_contact_data_only_with_the_purpose(webhook_app):
    app = webhook_app
    form_id = contact_form(app)
    with Receiver() as crm, Receiver() as analytics:
        crm_id, crm_secret = add_endpoint(
            app, crm.url, event_types=["lead.confirmed"], purpose="sales_contact"
        )
        _, analytics_secret = add_endpoint(app, analytics.url, event_types=["lead.confirmed"])
        sales = new_lead(
            app,
            form_id,
            "ada@engines.example",
            profile=PROFILE_DE,
            purposes=("newsletter", "sales_contact"),
        )
        news = new_lead(app, form_id, "bob@engines.example", purposes=("newsletter",))
        drain(app)

        crm_events = verify_all(crm, crm_secret)
        analytics_events = verify_all(analytics, analytics_secret)
    assert {(e["type"], e["data"]["lead_id"], e["data"]["purpose"]) for e in crm_events} == {
        ("lead.confirmed", str(sales), "newsletter"),
        ("lead.confirmed", str(sales), "sales_contact"),
        ("lead.confirmed", str(news), "newsletter"),
    }
    for event in crm_events:
        if event["data"]["lead_id"] == str(sales):
            contact = event["data"]["contact"]
            assert contact["email"] == "ada@engines.example"
            assert contact["company"] == "Analytical Engines GmbH"
        else:  # no sales_contact consent: ids only
            assert "contact" not in event["data"]
        assert event["timestamp"].endswith("Z")
    assert len(analytics_events) == 3
    assert all("contact" not in e["data"] for e in analytics_events)
    assert "engines.example" not in json.dumps(analytics_events)
    # Nothing personal stays behind: the log holds ids, statuses and durations.
    with uow(app) as s:
        stored = [json.dumps(m.data) for m in s.scalars(sa.select(WebhookMessage))] + [
            str(a.error) for a in s.scalars(sa.select(WebhookAttempt))
        ]
        attempts = list(s.scalars(sa.select(WebhookAttempt)))
        sent_with_contact = s.scalar(
            sa.select(sa.func.count()).where(
                WebhookMessage.endpoint_id == crm_id, WebhookMessage.contact_sent.is_(True)
            )
        )
    assert not any("engines.example" in text for text in stored)
    assert len(attempts) == 6 and all(a.status_code == 200 and a.error is None for a in attempts)
    assert sent_with_contact == 2
    assert set(statuses(app)) == {OutboxStatus.SENT}


def test_every_event_type_reaches_its_subscribers(webhook_app):
    from scoring import handoff, routing
    from scoring.models import Handoff

    app = webhook_app
    form_id = contact_form(app)
    with uow(app) as s:
        routing.add_team(s, "dach", "round_robin")
        routing.add_person(s, email="anna@sales.example", name="Anna", language="de")
        routing.add_member(s, "dach", "anna@sales.example")
    with Receiver() as crm:
        _, secret = add_endpoint(app, crm.url, purpose="sales_contact")
        from tests.test_scoring import qualify

        lead_id = qualify(app, form_id, "grace@engines.example")
        with uow(app) as s:
            offer = s.scalars(sa.select(Handoff).where(Handoff.lead_id == lead_id)).one()
            handoff.accept(s, offer)
        with uow(app) as s:
            lead = leads.get(s, lead_id)
            leads.set_attributes(s, lead, {"job_title": "CTO", "company": PROFILE_DE["company"]})
        with uow(app) as s:
            consent_service.withdraw(s, lead_id, ["newsletter"], meta=META)
        drain(app)
        events = verify_all(crm, secret)
    kinds = [(e["type"], e["data"]) for e in events]
    types = {kind for kind, _data in kinds}
    assert types == set(webhooks.EVENT_TYPES) - {"lead.erased"}
    stages = [(d["from"], d["to"]) for k, d in kinds if k == "lead.stage_changed"]
    assert stages == [("new", "mql"), ("mql", "sal")]
    (updated,) = [d for k, d in kinds if k == "lead.updated"]
    assert updated["fields"] == ["job_title"]  # the unchanged company is not reported
    assert updated["contact"]["job_title"] == "CTO"
    (accepted,) = [d for k, d in kinds if k == "lead.handoff_accepted"]
    assert accepted["salesperson_id"] is not None and "anna" not in json.dumps(accepted)
    (withdrawn,) = [d for k, d in kinds if k == "consent.withdrawn"]
    assert withdrawn["purpose"] == "newsletter"


def test_outbox_rows_belong_to_the_transaction_of_the_change(webhook_app):
    app = webhook_app
    form_id = contact_form(app)
    with Receiver() as crm:
        add_endpoint(app, crm.url, event_types=["consent.withdrawn"])
        lead_id = new_lead(app, form_id, "eve@engines.example")
        with pytest.raises(RuntimeError), uow(app) as s:
            consent_service.withdraw(s, lead_id, ["newsletter"], meta=META)
            assert s.scalar(sa.select(sa.func.count()).select_from(WebhookMessage)) == 1
            raise RuntimeError("the request failed after the change")
        assert statuses(app) == []
        assert drain(app) == 0 and crm.requests == []


def test_lead_erased_arrives_after_the_erasure_without_personal_data(webhook_app):
    app = webhook_app
    form_id = contact_form(app)
    with Receiver() as crm:
        _, secret = add_endpoint(
            app,
            crm.url,
            event_types=["lead.confirmed", "lead.erased"],
            purpose="newsletter",
        )
        lead_id = new_lead(app, form_id, "erin@engines.example", profile=PROFILE_DE)
        with uow(app) as s:
            rights.erase(s, leads.get(s, lead_id))
        drain(app)
        events = verify_all(crm, secret)
    assert [e["type"] for e in events] == ["lead.confirmed", "lead.erased"]
    erased = events[-1]
    assert erased["data"] == {"lead_id": str(lead_id)}
    # The confirmation was queued with contact data allowed, but the lead was gone
    # when it was sent: its data went nowhere.
    assert "contact" not in events[0]["data"]
    assert "engines.example" not in json.dumps(events)


# --- retries, de-duplication, disabling ------------------------------------------------


@pytest.mark.committing
def test_a_receiver_that_fails_for_a_while_gets_each_event_once(webhook_app):
    app = webhook_app
    form_id = contact_form(app)
    with Receiver() as crm:
        _, secret = add_endpoint(app, crm.url, event_types=["lead.confirmed"])
        crm.secrets = [secret]
        ids = [new_lead(app, form_id, f"p{i}@engines.example") for i in range(5)]
        crm.down_for = 7  # the first round and more fail
        crm.crash_after_processing = 2  # processes two, then answers 500: they come again
        stop = threading.Event()
        worker = Worker(app)
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            crm.wait_for(5)
            deadline = time.monotonic() + 10
            while set(statuses(app)) != {OutboxStatus.SENT} and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            runtime(app).wake.set()
            thread.join(timeout=30)
        assert not thread.is_alive()  # else it goes on claiming while later tests run
        verify_all(crm, secret)
        requests = len(crm.requests)
    assert {p["data"]["lead_id"] for p in crm.processed.values()} == {str(i) for i in ids}
    assert len(crm.processed) == 5  # once per webhook-id
    assert requests >= 5 + 7 + 2  # the outage and the two crashes caused retries
    assert set(statuses(app)) == {OutboxStatus.SENT}
    with uow(app) as s:
        errors = list(
            s.scalars(sa.select(WebhookAttempt.error).where(WebhookAttempt.error.is_not(None)))
        )
        assert "HTTP 503" in errors and "HTTP 500" in errors


def test_redirects_are_failures_and_are_not_followed(webhook_app):
    app = webhook_app
    with Receiver() as crm, Receiver() as elsewhere:
        crm.location = elsewhere.url
        endpoint_id, _ = add_endpoint(app, crm.url)
        with uow(app) as s:
            webhooks.enqueue_test(s, webhooks.get_endpoint(s, endpoint_id))
        drain(app)
        assert len(crm.requests) == len(FAST) + 1
        assert elsewhere.requests == []
    assert statuses(app) == [OutboxStatus.FAILED]
    with uow(app) as s:
        codes = set(s.scalars(sa.select(WebhookAttempt.status_code)))
    assert codes == {302}


def test_redeliver_sends_failed_events_again_with_the_same_id(webhook_app):
    app = webhook_app
    with Receiver() as crm:
        crm.status = 500
        endpoint_id, secret = add_endpoint(app, crm.url)
        with uow(app) as s:
            webhooks.enqueue_test(s, webhooks.get_endpoint(s, endpoint_id))
        drain(app)
        assert statuses(app) == [OutboxStatus.FAILED]
        first_id = crm.requests[0][0]["webhook-id"]
        crm.status = 204
        with uow(app) as s:
            assert webhooks.redeliver(s, endpoint=webhooks.get_endpoint(s, endpoint_id)) == 1
        drain(app)
        verify_all(crm, secret)
        assert {headers["webhook-id"] for headers, _ in crm.requests} == {first_id}
    assert statuses(app) == [OutboxStatus.SENT]


def test_an_endpoint_failing_too_long_is_disabled_and_its_owner_mailed(make_app, smtp_server):
    from tests.conftest import _smtp_config

    app = make_app(
        smtp_url=_smtp_config(smtp_server.port),
        webhook_allow_networks=LOOPBACK,
        webhook_retry_schedule=(60.0,) * 9,
        webhook_disable_after_hours=1.0,
        webhook_alert_email="ops@company.example",
    )
    with Receiver() as crm:
        crm.status = 500
        endpoint_id, _ = add_endpoint(app, crm.url, description="Our CRM")
        start = dt.datetime.now(dt.UTC)
        clock.freeze(start)
        with uow(app) as s:
            for _ in range(3):
                webhooks.enqueue_test(s, webhooks.get_endpoint(s, endpoint_id))
        drain(app, rounds=1)
        clock.advance(dt.timedelta(minutes=30))
        drain(app, rounds=1)
        with uow(app) as s:
            assert webhooks.get_endpoint(s, endpoint_id).status == EndpointStatus.ACTIVE
        clock.advance(dt.timedelta(minutes=31))
        drain(app, rounds=1)
        with uow(app) as s:
            endpoint = webhooks.get_endpoint(s, endpoint_id)
            assert endpoint.status == EndpointStatus.DISABLED
            assert endpoint.disabled_reason.startswith("failing since ")
        assert set(statuses(app)) == {OutboxStatus.FAILED}
        from tests.conftest import deliver

        deliver(app)
        clock.freeze(None)
        (mail,) = smtp_server.wait_for(1)
        assert mail["To"] == "ops@company.example"
        assert mail["Subject"] == f"Webhook endpoint {endpoint_id} was disabled"
        text = mail.get_body(preferencelist=("plain",)).get_content()
        assert "127.0.0.1" in text and "hooks/leadvault" not in text  # no path: it may hold a token
        assert f"leadvault webhooks enable {endpoint_id}" in text
        # A disabled endpoint gets no new events; enabled again, it gets what it missed.
        with uow(app) as s:
            assert webhooks.subscribed(s, "lead.confirmed") is False
            webhooks.enable(s, webhooks.get_endpoint(s, endpoint_id))
            assert webhooks.redeliver(s, endpoint=webhooks.get_endpoint(s, endpoint_id)) == 3
        crm.status = 200
        before = len(crm.requests)
        drain(app)
        assert len(crm.requests) == before + 3
    assert set(statuses(app)) == {OutboxStatus.SENT}


def test_410_gone_disables_at_once(webhook_app, smtp_server):
    app = webhook_app
    with Receiver() as crm:
        crm.status = 410
        endpoint_id, _ = add_endpoint(app, crm.url)
        with uow(app) as s:
            webhooks.enqueue_test(s, webhooks.get_endpoint(s, endpoint_id))
        drain(app)
        assert len(crm.requests) == 1
    with uow(app) as s:
        endpoint = webhooks.get_endpoint(s, endpoint_id)
        assert endpoint.status == EndpointStatus.DISABLED
        assert "410" in endpoint.disabled_reason


# --- secrets ----------------------------------------------------------------------------


def test_rotation_signs_with_both_secrets_during_the_overlap(webhook_app):
    app = webhook_app
    with Receiver() as crm:
        endpoint_id, old = add_endpoint(app, crm.url)
        with uow(app) as s:
            endpoint = webhooks.get_endpoint(s, endpoint_id)
            new = webhooks.rotate_secret(s, endpoint, overlap_hours=1)
            webhooks.enqueue_test(s, endpoint)
        drain(app)
        # During the overlap, a receiver still on the old secret and one on the new accept it.
        assert verify_all(crm, old) == verify_all(crm, new)
        assert len(crm.requests[0][0]["webhook-signature"].split(" ")) == 2

        with uow(app) as s:
            endpoint = webhooks.get_endpoint(s, endpoint_id)
            newest = webhooks.rotate_secret(s, endpoint, overlap_hours=0)
            webhooks.enqueue_test(s, endpoint)
        drain(app)
        headers, body = crm.requests[-1]
        Webhook(newest).verify(body, headers)
        for stale in (old, new):
            with pytest.raises(WebhookVerificationError):
                Webhook(stale).verify(body, headers)
    assert newest.startswith("whsec_") and len({old, new, newest}) == 3
    with uow(app) as s:
        row = s.get(WebhookEndpoint, endpoint_id)
        assert old.encode() not in row.payload and newest.encode() not in row.payload


# --- the SSRF guard ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://localhost/hook",
    ],
)
def test_internal_addresses_are_refused_without_the_override(app, url):
    with uow(app) as s, pytest.raises(webhooks.WebhookError, match="address"):
        webhooks.create_endpoint(s, url=url)


def test_names_are_checked_at_every_delivery_and_the_checked_address_is_used(webhook_app):
    app = webhook_app
    answers = {"crm.example.com": ["127.0.0.1"]}
    with Receiver() as crm:
        port = crm.server.server_port
        url = f"http://crm.example.com:{port}/hooks"
        endpoint_id, secret = add_endpoint(app, url, resolve=False)
        guard = transport.Guard(LOOPBACK, resolver=lambda host, _port: answers[host])
        deliverer = delivery.WebhookDeliverer(app)
        deliverer.client.guard = guard
        try:
            with uow(app) as s:
                webhooks.enqueue_test(s, webhooks.get_endpoint(s, endpoint_id))
            drain(app, deliverer)
            # Connected to the checked address; the Host header keeps the name.
            assert crm.requests[0][0]["host"] == f"crm.example.com:{port}"
            verify_all(crm, secret)
            # The name now points at the cloud metadata service, then at a private network.
            for address in ("169.254.169.254", "10.0.0.1"):
                answers["crm.example.com"] = [address]
                with uow(app) as s:
                    webhooks.enqueue_test(s, webhooks.get_endpoint(s, endpoint_id))
                deliverer.deliver_due(worker_id="test", limit=10)
        finally:
            deliverer.close()
        assert len(crm.requests) == 1
    with uow(app) as s:
        errors = list(
            s.scalars(
                sa.select(WebhookAttempt.error)
                .where(WebhookAttempt.error.is_not(None))
                .order_by(WebhookAttempt.id)
            )
        )
    # (A quick retry of the first may meet the second answer too.)
    assert errors[0].startswith("crm.example.com resolves to 169.254.169.254")
    assert set(errors) == {
        "crm.example.com resolves to 169.254.169.254, a link-local (cloud metadata) address "
        "(allow it with LEADVAULT_WEBHOOK_ALLOW_NETWORKS)",
        "crm.example.com resolves to 10.0.0.1, a private address "
        "(allow it with LEADVAULT_WEBHOOK_ALLOW_NETWORKS)",
    }


def test_guard_rules():
    def guard(*answers, allow=()):
        return transport.Guard(allow, resolver=lambda _h, _p: list(answers))

    target = transport.parse_url("https://hooks.example.com/x")
    assert guard("93.184.215.14").check(target) == "93.184.215.14"
    # One inward answer among public ones refuses the name.
    with pytest.raises(transport.AddressRefused, match="private"):
        guard("93.184.215.14", "192.168.1.5").check(target)
    with pytest.raises(transport.AddressRefused, match="reserved"):
        guard("100.64.0.1").check(target)
    with pytest.raises(transport.AddressRefused, match="unspecified"):
        guard("0.0.0.0").check(target)
    assert guard("10.20.0.7", allow=("10.20.0.0/16",)).check(target) == "10.20.0.7"
    with pytest.raises(transport.AddressRefused, match=r"10\.21\.0\.7"):
        guard("10.21.0.7", allow=("10.20.0.0/16",)).check(target)
    # Plain http only where the operator allowed the network.
    plain = transport.parse_url("http://hooks.example.com/x")
    with pytest.raises(transport.AddressRefused, match="https"):
        guard("93.184.215.14").check(plain)
    for bad in ("ftp://x.example/", "https://user:pw@x.example/", "https:///nohost", "nonsense"):
        with pytest.raises(transport.AddressRefused):
            transport.parse_url(bad)


# --- the command line -------------------------------------------------------------------


def test_webhooks_commands(webhook_app):
    app = webhook_app
    runner = CliRunner()
    env = {**cli_env(app), "LEADVAULT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32"}
    with Receiver() as crm:
        bad = runner.invoke(cli, ["webhooks", "add", "http://10.0.0.1/x"], env=env, obj=app)
        assert bad.exit_code == 1 and "private address" in bad.output
        unknown = runner.invoke(
            cli, ["webhooks", "add", crm.url, "--event", "lead.eaten"], env=env, obj=app
        )
        assert unknown.exit_code == 1 and "unknown event type 'lead.eaten'" in unknown.output

        added = runner.invoke(
            cli,
            ["webhooks", "add", crm.url, "--event", "lead.erased", "--description", "CRM"],
            env=env,
            obj=app,
        )
        assert added.exit_code == 0, added.output
        secret = added.output.strip().splitlines()[-1]
        endpoint_id = int(added.output.split()[1])
        assert secret.startswith("whsec_")

        tested = runner.invoke(cli, ["webhooks", "test", str(endpoint_id)], env=env, obj=app)
        assert tested.exit_code == 0, tested.output
        assert tested.output.startswith("Delivered: HTTP 200")
        (event,) = verify_all(crm, secret)
        assert event["type"] == "webhook.test"

        rotated = runner.invoke(
            cli, ["webhooks", "rotate-secret", str(endpoint_id)], env=env, obj=app
        )
        assert rotated.exit_code == 0 and "Both secrets sign until" in rotated.output
        new_secret = rotated.output.strip().splitlines()[-1]
        assert (
            runner.invoke(cli, ["webhooks", "test", str(endpoint_id)], env=env, obj=app).exit_code
            == 0
        )
        headers, body = crm.requests[-1]
        for key in (secret, new_secret):
            Webhook(key).verify(body, headers)

        listing = runner.invoke(cli, ["webhooks", "list"], env=env, obj=app)
        assert listing.exit_code == 0
        assert f"{endpoint_id}  http://127.0.0.1:{crm.server.server_port}  active" in listing.output
        assert "2 sent" in listing.output and secret not in listing.output
        assert "/hooks/leadvault" not in listing.output

        log = runner.invoke(cli, ["webhooks", "log", str(endpoint_id)], env=env, obj=app)
        assert log.output.count("webhook.test") == 2 and "HTTP 200" in log.output

        crm.status = 500
        failed = runner.invoke(cli, ["webhooks", "test", str(endpoint_id)], env=env, obj=app)
        assert failed.exit_code == 1 and "HTTP 500" in failed.output

        disabled = runner.invoke(cli, ["webhooks", "disable", str(endpoint_id)], env=env, obj=app)
        assert disabled.exit_code == 0 and "1 queued events held" in disabled.output
        refused = runner.invoke(cli, ["webhooks", "redeliver", str(endpoint_id)], env=env, obj=app)
        assert refused.exit_code == 1 and "disabled" in refused.output
        assert (
            runner.invoke(cli, ["webhooks", "enable", str(endpoint_id)], env=env, obj=app).exit_code
            == 0
        )
        again = runner.invoke(cli, ["webhooks", "redeliver", str(endpoint_id)], env=env, obj=app)
        assert again.exit_code == 0 and "1 events queued again" in again.output
        missing = runner.invoke(cli, ["webhooks", "test", "999"], env=env, obj=app)
        assert missing.exit_code == 1 and "no webhook endpoint 999" in missing.output
    # Each ping is in the audit trail, who sent it to which endpoint (delivered or not).
    with uow(app) as s:
        pings = audit.entries(s, audit.Filters(action=audit.Action.WEBHOOK_TESTED))
    assert [(e.actor, e.object_id) for e in pings] == [(audit.cli_actor(), str(endpoint_id))] * 3
