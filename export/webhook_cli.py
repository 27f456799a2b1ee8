"""``leadvault webhooks …``: endpoints, secrets, test pings, redelivery, the log."""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import TYPE_CHECKING, Any

import click

from leadvault.commands import DAY, ROW_ID, Refused, app_session, load_app, refusing

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from export.models import WebhookEndpoint
    from leadvault.audit import Action


@click.group()
def webhooks() -> None:
    """Signed outbound webhooks (Standard Webhooks)."""


def _audit(session: Session, endpoint: WebhookEndpoint, action: Action, **detail: Any) -> None:
    """The entry the console and the API write for the same change, by the person at the
    shell (a purpose lets an endpoint carry contact data out; a secret makes it trusted)."""
    from leadvault import audit

    audit.record(
        session,
        actor=audit.cli_actor(),
        action=action,
        object_type=audit.ObjectType.WEBHOOK_ENDPOINT,
        object_id=endpoint.id,
        detail=detail,
    )


def _event_help() -> str:
    from export.webhooks import EVENT_TYPES

    return "Event type to send (repeatable; default: all): " + ", ".join(EVENT_TYPES)


@webhooks.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, help="lead.confirmed, lead.erased … (repeat)")
@click.option(
    "--purpose",
    default=None,
    help="Send a lead's contact data only when it granted this purpose (e.g. sales_contact).",
)
@click.option("--description", default="", help="What receives the events (e.g. 'CRM').")
def add(url: str, events: tuple[str, ...], purpose: str | None, description: str) -> None:
    """Add an endpoint; prints its id and its signing secret (shown once)."""
    from export import webhooks as service
    from leadvault.audit import Action

    app = load_app()
    with refusing(service.WebhookError), app_session(app) as session:
        endpoint, secret = service.create_endpoint(
            session, url=url, event_types=events, purpose=purpose, description=description
        )
        endpoint_id, types = endpoint.id, endpoint.event_types
        _audit(session, endpoint, Action.WEBHOOK_ADDED, events=types, purpose=purpose)
    click.echo(f"Endpoint {endpoint_id} added for {', '.join(types)}.")
    if purpose is None:
        click.echo("Payloads carry ids only (no --purpose given, so no contact data).")
    click.echo("Signing secret (shown once; verify with any Standard Webhooks library):")
    click.echo(secret)


@webhooks.command("list")
def list_() -> None:
    """List endpoints with their state and delivery counts."""
    from export import webhooks as service

    app = load_app()
    with app_session(app) as session:
        counts = service.counts(session)
        rows = []
        for endpoint in service.list_endpoints(session):
            host = service.host_of(service.config_of(session, endpoint))
            rows.append((endpoint, host, counts.get(endpoint.id, {})))
    if not rows:
        click.echo("No webhook endpoints. Add one with `leadvault webhooks add URL`.")
        return
    for endpoint, host, count in rows:
        state = endpoint.status
        if endpoint.failing_since is not None and state == "active":
            state = f"failing since {endpoint.failing_since:%Y-%m-%d %H:%M}"
        click.echo(f"{endpoint.id}  {host}  {state}  purpose={endpoint.purpose or '-'}")
        if endpoint.description:
            click.echo(f"    {endpoint.description}")
        click.echo(f"    events: {', '.join(endpoint.event_types)}")
        summary = ", ".join(f"{n} {status}" for status, n in sorted(count.items())) or "none yet"
        click.echo(f"    deliveries: {summary}")
        if endpoint.disabled_reason:
            click.echo(f"    disabled: {endpoint.disabled_reason}")


def _worker_id() -> str:
    return f"cli:{socket.gethostname()}:{os.getpid()}"


@webhooks.command("test")
@click.argument("endpoint_id", type=ROW_ID)
def test(endpoint_id: int) -> None:
    """Send a signed test event now and show the receiver's answer (audited: who pinged
    which endpoint)."""
    from export import delivery
    from export import webhooks as service
    from leadvault.app import runtime
    from leadvault.audit import Action
    from leadvault.db import unit_of_work

    app = load_app()
    with refusing(service.WebhookError), app_session(app) as session:
        endpoint = service.get_endpoint(session, endpoint_id)
        if endpoint.status != "active":
            raise service.WebhookError(service.DISABLED, id=endpoint_id)
        outbox_id = service.enqueue_test(session, endpoint)
        _audit(session, endpoint, Action.WEBHOOK_TESTED)
    worker_id = _worker_id()
    with unit_of_work(runtime(app).session_factory) as session:
        ids = delivery.claim_ids(session, [outbox_id], worker_id=worker_id)
    deliverer = delivery.WebhookDeliverer(app)
    try:
        results = deliverer.deliver(ids, worker_id=worker_id)
    finally:
        deliverer.close()
    if not results:
        raise Refused("the test event was taken by a worker; see `leadvault webhooks log`")
    result = results[0]
    if result.ok:
        click.echo(f"Delivered: HTTP {result.status} in {result.duration_ms} ms.")
        return
    raise Refused(f"not delivered: {result.error} (the worker retries it)")


@webhooks.command("rotate-secret")
@click.argument("endpoint_id", type=ROW_ID)
@click.option(
    "--overlap-hours",
    type=click.FloatRange(0, 24 * 30),
    default=None,
    help="How long the old secret still signs (default LEADVAULT_WEBHOOK_ROTATION_OVERLAP_HOURS).",
)
def rotate_secret(endpoint_id: int, overlap_hours: float | None) -> None:
    """Make a new signing secret; the old one keeps signing during the overlap."""
    from export import webhooks as service
    from leadvault.audit import Action

    app = load_app()
    with refusing(service.WebhookError), app_session(app) as session:
        endpoint = service.get_endpoint(session, endpoint_id)
        secret = service.rotate_secret(session, endpoint, overlap_hours=overlap_hours)
        _audit(session, endpoint, Action.WEBHOOK_SECRET_ROTATED)
        until = endpoint.previous_secret_until
    if until is not None:
        click.echo(f"Both secrets sign until {until:%Y-%m-%d %H:%M} UTC. New secret:")
    else:
        click.echo("The old secret no longer signs. New secret:")
    click.echo(secret)


@webhooks.command("disable")
@click.argument("endpoint_id", type=ROW_ID)
def disable(endpoint_id: int) -> None:
    """Stop sending to an endpoint (queued events are kept as failed)."""
    from export import webhooks as service
    from leadvault.audit import Action

    app = load_app()
    with refusing(service.WebhookError), app_session(app) as session:
        endpoint = service.get_endpoint(session, endpoint_id)
        held = service.disable(session, endpoint, reason="disabled by hand")
        _audit(session, endpoint, Action.WEBHOOK_DISABLED, held=held)
    click.echo(f"Endpoint {endpoint_id} disabled; {held} queued events held.")


@webhooks.command("enable")
@click.argument("endpoint_id", type=ROW_ID)
def enable(endpoint_id: int) -> None:
    """Send to a disabled endpoint again (then `redeliver` what it missed)."""
    from export import webhooks as service
    from leadvault.audit import Action

    app = load_app()
    with refusing(service.WebhookError), app_session(app) as session:
        endpoint = service.get_endpoint(session, endpoint_id)
        service.enable(session, endpoint)
        _audit(session, endpoint, Action.WEBHOOK_ENABLED)
    click.echo(f"Endpoint {endpoint_id} enabled.")


@webhooks.command("remove")
@click.argument("endpoint_id", type=ROW_ID)
def remove(endpoint_id: int) -> None:
    """Delete an endpoint with its queue and log."""
    from export import webhooks as service
    from leadvault.audit import Action

    app = load_app()
    with refusing(service.WebhookError), app_session(app) as session:
        endpoint = service.get_endpoint(session, endpoint_id)
        _audit(session, endpoint, Action.WEBHOOK_REMOVED)  # while the id is still its own
        service.delete_endpoint(session, endpoint)
    click.echo(f"Endpoint {endpoint_id} removed.")


@webhooks.command("redeliver")
@click.argument("endpoint_id", type=ROW_ID)
@click.option("--event-id", default=None, help="Only this event (its webhook-id, msg_…).")
@click.option("--since", type=DAY, default=None, help="UTC day, inclusive")
@click.option("--all", "everything", is_flag=True, help="Also events that were delivered.")
def redeliver(
    endpoint_id: int, event_id: str | None, since: dt.datetime | None, everything: bool
) -> None:
    """Queue an endpoint's failed events again (same webhook-id, so receivers de-duplicate)."""
    from export import webhooks as service
    from leadvault.audit import Action

    app = load_app()
    with refusing(service.WebhookError), app_session(app) as session:
        endpoint = service.get_endpoint(session, endpoint_id)
        count = service.redeliver(
            session,
            endpoint=endpoint,
            event_id=event_id,
            failed_only=not everything,
            since=since.replace(tzinfo=dt.UTC) if since else None,
        )
        _audit(session, endpoint, Action.WEBHOOK_REDELIVERED, queued=count)
    click.echo(f"{count} events queued again for endpoint {endpoint_id}.")


@webhooks.command("log")
@click.argument("endpoint_id", type=ROW_ID)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def log(endpoint_id: int, limit: int) -> None:
    """Recent events of an endpoint and each attempt's status and duration."""
    from export import webhooks as service

    app = load_app()
    with refusing(service.WebhookError), app_session(app) as session:
        endpoint = service.get_endpoint(session, endpoint_id)
        entries = service.messages(session, endpoint, limit=limit)
        tries = service.attempts(session, endpoint, limit=limit * 3)
    by_row: dict[int, list[str]] = {}
    for attempt in reversed(tries):
        outcome = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error
        by_row.setdefault(attempt.outbox_id, []).append(
            f"{attempt.attempted_at:%H:%M:%S} {outcome} {attempt.duration_ms} ms"
        )
    for entry in entries:
        click.echo(
            f"{entry.occurred_at:%Y-%m-%d %H:%M:%S}  {entry.event_type}  {entry.event_id}  "
            f"{entry.status} after {entry.attempts} attempts"
        )
        for line in by_row.get(entry.outbox_id, []):
            click.echo(f"    {line}")
