"""Webhook endpoints and events: subscribe, sign, queue, redeliver.

Plain functions taking a session; they flush, never commit. An event is
queued as one outbox row (kind ``webhook``) per subscribed endpoint in the
transaction of the change that caused it; the worker delivers it
(``export.delivery``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export import signing, transport
from export.models import EndpointStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from leadvault import clock
from leadvault.crypto import DataKey, WrappedKey
from leadvault.db import settings_of, vault_of
from leadvault.i18n import N_
from leadvault.models import OutboxKind, OutboxMessage, OutboxStatus

# Event types an endpoint may subscribe to, with what they mean.
EVENT_TYPES: dict[str, str] = {
    "lead.confirmed": N_("A lead confirmed a purpose by double opt-in"),
    "lead.stage_changed": N_(
        "A lead moved to another lifecycle stage (MQL, SAL, SQL, won, lost …)"
    ),
    "lead.handoff_accepted": N_("A salesperson accepted a lead"),
    "lead.updated": N_("A confirmed lead's profile fields changed"),
    "consent.withdrawn": N_("A lead withdrew a purpose"),
    "lead.erased": N_("A lead was erased: erase your copy (carries no personal data)"),
}
TEST_EVENT = "webhook.test"
# Events whose body never carries contact data.
NO_CONTACT = frozenset({"lead.erased", TEST_EVENT})
_ENDPOINT_CACHE = "export.webhook_endpoints"


class WebhookError(Exception):
    """A request about endpoints that is refused, with a message safe to show."""


@dataclasses.dataclass(frozen=True)
class EndpointConfig:
    url: str
    secret: str
    previous: str | None


def _owner(endpoint: WebhookEndpoint) -> str:
    return endpoint.payload_owner


def _key(session: Session, endpoint: WebhookEndpoint) -> DataKey:
    wrapped = WrappedKey(endpoint.payload_key, endpoint.payload_key_version)
    return vault_of(session).unwrap(wrapped, endpoint.payload_owner)


def config_of(session: Session, endpoint: WebhookEndpoint) -> EndpointConfig:
    raw = _key(session, endpoint).decrypt_json(f"webhook/{_owner(endpoint)}", endpoint.payload)
    return EndpointConfig(raw["url"], raw["secret"], raw.get("previous"))


def _seal(session: Session, endpoint: WebhookEndpoint, config: EndpointConfig) -> None:
    value = dataclasses.asdict(config)
    endpoint.payload = _key(session, endpoint).encrypt_json(f"webhook/{_owner(endpoint)}", value)


def signing_secrets(endpoint: WebhookEndpoint, config: EndpointConfig) -> list[str]:
    """The current secret, and the previous one while the rotation overlap lasts."""
    valid = [config.secret]
    until = endpoint.previous_secret_until
    if config.previous and until is not None and clock.now() < until:
        valid.append(config.previous)
    return valid


def host_of(config: EndpointConfig) -> str:
    """Scheme, host and port, for lists and staff mails (the path may hold a token)."""
    try:
        target = transport.parse_url(config.url)
    except transport.AddressRefused:
        return "(invalid URL)"
    return f"{target.scheme}://{target.host_header}"


def guard(session: Session) -> transport.Guard:
    return transport.Guard(settings_of(session).webhook_allow_networks)


def _check_url(session: Session, url: str, *, resolve: bool) -> None:
    try:
        target = transport.parse_url(url)
        if resolve:
            guard(session).check(target)
    except transport.AddressRefused as exc:
        raise WebhookError(str(exc)) from None


def _check_events(event_types: Iterable[str]) -> list[str]:
    chosen = sorted(set(event_types)) or sorted(EVENT_TYPES)
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown:
        raise WebhookError(
            f"unknown event type {unknown[0]!r}; known: {', '.join(sorted(EVENT_TYPES))}"
        )
    return chosen


def _check_purpose(session: Session, purpose: str | None) -> None:
    from consent.models import Purpose

    if purpose is not None and session.get(Purpose, purpose) is None:
        raise WebhookError(f"unknown purpose {purpose!r}")


# --- endpoints ------------------------------------------------------------------


def create_endpoint(
    session: Session,
    *,
    url: str,
    event_types: Iterable[str] = (),
    purpose: str | None = None,
    description: str = "",
    resolve: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; returns it with its secret (shown once, stored sealed)."""
    _check_url(session, url, resolve=resolve)
    chosen = _check_events(event_types)
    _check_purpose(session, purpose)
    owner = f"webhook-endpoint/{uuid.uuid4()}"
    key, wrapped = vault_of(session).new_data_key(owner)
    secret = signing.new_secret()
    now = clock.now()
    endpoint = WebhookEndpoint(
        description=description.strip()[:200],
        event_types=chosen,
        purpose=purpose,
        status=EndpointStatus.ACTIVE,
        payload=key.encrypt_json(
            f"webhook/{owner}", dataclasses.asdict(EndpointConfig(url.strip(), secret, None))
        ),
        payload_owner=owner,
        payload_key=wrapped.wrapped,
        payload_key_version=wrapped.version,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    _forget_cache(session)
    return endpoint, secret


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise WebhookError(f"no webhook endpoint {endpoint_id}")
    return endpoint


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def update_endpoint(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    purpose: str | None = None,
    clear_purpose: bool = False,
    description: str | None = None,
    resolve: bool = True,
) -> WebhookEndpoint:
    if url is not None:
        _check_url(session, url, resolve=resolve)
        config = config_of(session, endpoint)
        _seal(session, endpoint, dataclasses.replace(config, url=url.strip()))
    if event_types is not None:
        endpoint.event_types = _check_events(event_types)
    if purpose is not None or clear_purpose:
        _check_purpose(session, purpose)
        endpoint.purpose = purpose
    if description is not None:
        endpoint.description = description.strip()[:200]
    endpoint.updated_at = clock.now()
    session.flush()
    _forget_cache(session)
    return endpoint


def rotate_secret(
    session: Session, endpoint: WebhookEndpoint, *, overlap_hours: float | None = None
) -> str:
    """A new secret signs from now on; the old one signs too for the overlap."""
    hours = settings_of(session).webhook_rotation_overlap_hours
    hours = hours if overlap_hours is None else overlap_hours
    config = config_of(session, endpoint)
    secret = signing.new_secret()
    previous = config.secret if hours > 0 else None
    _seal(session, endpoint, EndpointConfig(config.url, secret, previous))
    now = clock.now()
    endpoint.previous_secret_until = now + dt.timedelta(hours=hours) if previous else None
    endpoint.updated_at = now
    session.flush()
    return secret


def disable(session: Session, endpoint: WebhookEndpoint, *, reason: str) -> int:
    """Stop deliveries; queued ones are marked failed (redeliver brings them back)."""
    now = clock.now()
    endpoint.status = EndpointStatus.DISABLED
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason[:200]
    endpoint.updated_at = now
    queued = sa.select(WebhookMessage.outbox_id).where(WebhookMessage.endpoint_id == endpoint.id)
    count = session.execute(
        sa.update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(queued),
            OutboxMessage.status == OutboxStatus.PENDING,
        )
        .values(status=OutboxStatus.FAILED, last_error="endpoint disabled")
        .execution_options(synchronize_session=False)
    ).rowcount
    session.flush()
    _forget_cache(session)
    return count


def enable(session: Session, endpoint: WebhookEndpoint) -> None:
    endpoint.status = EndpointStatus.ACTIVE
    endpoint.failing_since = None
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    endpoint.updated_at = clock.now()
    session.flush()
    _forget_cache(session)


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint with its queue and log."""
    queued = sa.select(WebhookMessage.outbox_id).where(WebhookMessage.endpoint_id == endpoint.id)
    session.execute(
        sa.delete(OutboxMessage)
        .where(OutboxMessage.id.in_(queued))
        .execution_options(synchronize_session=False)
    )
    session.delete(endpoint)
    session.flush()
    _forget_cache(session)


# --- events ---------------------------------------------------------------------


def _forget_cache(session: Session) -> None:
    session.info.pop(_ENDPOINT_CACHE, None)


def _subscribers(session: Session, event_type: str) -> list[tuple[int, list[str]]]:
    """Active endpoints as (id, event types), read once per transaction."""
    transaction = session.get_transaction()
    cached = session.info.get(_ENDPOINT_CACHE)
    if cached is None or cached[0] is not transaction:
        rows = session.execute(
            sa.select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.status == EndpointStatus.ACTIVE
            )
        ).all()
        cached = (transaction, [(row.id, list(row.event_types or [])) for row in rows])
        session.info[_ENDPOINT_CACHE] = cached
    return [entry for entry in cached[1] if event_type in entry[1]]


def subscribed(session: Session, event_type: str) -> bool:
    return bool(_subscribers(session, event_type))


def emit(
    session: Session,
    event_type: str,
    *,
    lead_id: uuid.UUID | None,
    data: Mapping[str, Any],
    occurred_at: dt.datetime | None = None,
    endpoint_ids: Sequence[int] | None = None,
) -> list[int]:
    """Queue one event for every subscribed endpoint; returns the outbox ids."""
    targets = (
        list(endpoint_ids)
        if endpoint_ids is not None
        else [endpoint_id for endpoint_id, _types in _subscribers(session, event_type)]
    )
    if not targets:
        return []
    now = clock.now()
    event_id = f"msg_{uuid.uuid4().hex}"
    body = {**({"lead_id": str(lead_id)} if lead_id is not None else {}), **data}
    rows = [
        OutboxMessage(
            kind=OutboxKind.WEBHOOK,
            template=event_type,
            purpose=None,
            lead_id=None,
            payload=b"",
            payload_owner=event_id,
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for _ in targets
    ]
    session.add_all(rows)
    session.flush()
    session.add_all(
        WebhookMessage(
            outbox_id=row.id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            occurred_at=occurred_at or now,
            lead_id=lead_id,
            data=body,
            contact_sent=False,
        )
        for row, endpoint_id in zip(rows, targets, strict=True)
    )
    session.flush()
    return [row.id for row in rows]


def enqueue_test(session: Session, endpoint: WebhookEndpoint) -> int:
    """A ping to one endpoint, whatever it subscribes to."""
    (outbox_id,) = emit(
        session,
        TEST_EVENT,
        lead_id=None,
        data={"endpoint_id": endpoint.id, "message": "Leadvault test event"},
        endpoint_ids=[endpoint.id],
    )
    return outbox_id


def redeliver(
    session: Session,
    *,
    endpoint: WebhookEndpoint | None = None,
    event_id: str | None = None,
    outbox_id: int | None = None,
    failed_only: bool = True,
    since: dt.datetime | None = None,
) -> int:
    """Queue deliveries again (same ``webhook-id``, so receivers can de-duplicate)."""
    ids = sa.select(WebhookMessage.outbox_id)
    if endpoint is not None:
        if endpoint.status != EndpointStatus.ACTIVE:
            raise WebhookError(f"endpoint {endpoint.id} is disabled; enable it first")
        ids = ids.where(WebhookMessage.endpoint_id == endpoint.id)
    if event_id is not None:
        ids = ids.where(WebhookMessage.event_id == event_id)
    if outbox_id is not None:
        ids = ids.where(WebhookMessage.outbox_id == outbox_id)
    if since is not None:
        ids = ids.where(WebhookMessage.occurred_at >= since)
    active = sa.select(WebhookEndpoint.id).where(WebhookEndpoint.status == EndpointStatus.ACTIVE)
    ids = ids.where(WebhookMessage.endpoint_id.in_(active))
    states = [OutboxStatus.FAILED] if failed_only else [OutboxStatus.FAILED, OutboxStatus.SENT]
    return session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status.in_([s.value for s in states]))
        .values(
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=clock.now(),
            last_error=None,
            locked_by=None,
            locked_until=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount


# --- the log ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LogEntry:
    outbox_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    occurred_at: dt.datetime


def messages(session: Session, endpoint: WebhookEndpoint, *, limit: int = 50) -> list[LogEntry]:
    rows = session.execute(
        sa.select(WebhookMessage, OutboxMessage)
        .join(OutboxMessage, OutboxMessage.id == WebhookMessage.outbox_id)
        .where(WebhookMessage.endpoint_id == endpoint.id)
        .order_by(WebhookMessage.outbox_id.desc())
        .limit(limit)
    ).all()
    return [
        LogEntry(
            m.outbox_id, m.event_id, m.event_type, o.status, o.attempts, o.last_error, m.occurred_at
        )
        for m, o in rows
    ]


def attempts(
    session: Session, endpoint: WebhookEndpoint, *, limit: int = 50
) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            sa.select(WebhookAttempt)
            .where(WebhookAttempt.endpoint_id == endpoint.id)
            .order_by(WebhookAttempt.id.desc())
            .limit(limit)
        )
    )


def counts(session: Session) -> dict[int, dict[str, int]]:
    """Per endpoint: deliveries by outbox status."""
    rows = session.execute(
        sa.select(WebhookMessage.endpoint_id, OutboxMessage.status, sa.func.count())
        .join(OutboxMessage, OutboxMessage.id == WebhookMessage.outbox_id)
        .group_by(WebhookMessage.endpoint_id, OutboxMessage.status)
    ).all()
    result: dict[int, dict[str, int]] = {}
    for endpoint_id, status, number in rows:
        result.setdefault(endpoint_id, {})[status] = number
    return result


def purge_log(session: Session) -> int:
    """Forget deliveries (and their attempts) older than LEADVAULT_WEBHOOK_LOG_DAYS."""
    days = settings_of(session).webhook_log_days
    before = clock.now() - dt.timedelta(days=days)
    done = sa.select(WebhookMessage.outbox_id).where(WebhookMessage.occurred_at < before)
    return session.execute(
        sa.delete(OutboxMessage)
        .where(
            OutboxMessage.kind == OutboxKind.WEBHOOK,
            OutboxMessage.id.in_(done),
            OutboxMessage.status.in_(
                [OutboxStatus.SENT.value, OutboxStatus.FAILED.value, OutboxStatus.CANCELLED.value]
            ),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
