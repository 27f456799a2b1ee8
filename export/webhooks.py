"""Webhook endpoints and events: subscribe, sign, queue, redeliver.

Plain functions taking a session; they flush, never commit. An event is
queued as one outbox row (kind ``webhook``) per subscribed endpoint in the
transaction of the change that caused it; the worker delivers it
(``export.delivery``). Here the endpoints; queueing events is
``export.webhook_events``', the delivery log ``export.webhook_log``'s (their
names are here too).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from export import signing, transport
from export.models import EndpointStatus, WebhookEndpoint, WebhookMessage
from export.webhook_events import (
    EVENT_TYPES,
    NO_CONTACT,
    TEST_EVENT,
    emit,
    forget_cache,
    subscribed,
)
from export.webhook_log import LogEntry, attempts, counts, messages, purge_log
from leadvault import clock, untrusted
from leadvault.crypto import DataKey, WrappedKey
from leadvault.db import settings_of, vault_of
from leadvault.i18n import N_
from leadvault.models import OutboxMessage, OutboxStatus
from leadvault.refusals import RefusedRequest

# Events (export.webhook_events) and the log (export.webhook_log) are named here too.
__all__ = [
    "DESCRIPTION_MAX",
    "DISABLED",
    "EVENT_TYPES",
    "NO_CONTACT",
    "TEST_EVENT",
    "EndpointConfig",
    "LogEntry",
    "WebhookError",
    "attempts",
    "config_of",
    "counts",
    "create_endpoint",
    "delete_endpoint",
    "disable",
    "emit",
    "enable",
    "enqueue_test",
    "get_endpoint",
    "guard",
    "host_of",
    "list_endpoints",
    "messages",
    "purge_log",
    "redeliver",
    "rotate_secret",
    "signing_secrets",
    "subscribed",
    "update_endpoint",
]


class WebhookError(RefusedRequest):
    """A request about endpoints that is refused; ``field`` is the input it is about
    (``url``, ``event``, ``purpose``, ``description``) or None."""


DESCRIPTION_MAX = 200
DISABLED = N_("endpoint %(id)s is disabled; enable it first")


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
        raise WebhookError(exc.message, field="url", **exc.values) from None


def _check_events(event_types: Iterable[str]) -> list[str]:
    chosen = sorted(set(event_types)) or sorted(EVENT_TYPES)
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown:
        raise WebhookError(
            N_("unknown event type '%(event)s'; known: %(known)s"),
            field="event",
            event=unknown[0],
            known=", ".join(sorted(EVENT_TYPES)),
        )
    return chosen


def _check_purpose(session: Session, purpose: str | None) -> None:
    from consent.models import Purpose

    if purpose is not None and session.get(Purpose, purpose) is None:
        raise WebhookError(N_("unknown purpose '%(purpose)s'"), field="purpose", purpose=purpose)


def _description(description: str) -> str:
    """The description as stored: one line (lists show it under the host), trimmed,
    at most DESCRIPTION_MAX characters; WebhookError names a refused character."""
    # Before trimming: the API document's pattern judges the text as sent.
    char = untrusted.one_line_refused(description)
    if char is not None:
        raise WebhookError(
            N_(
                "The description holds the control character U+%(code)s (a line break, tab "
                "or the like); please give it on one line."
            ),
            field="description",
            code=f"{ord(char):04X}",
        )
    return description.strip()[:DESCRIPTION_MAX]


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
    description = _description(description)
    owner = f"webhook-endpoint/{uuid.uuid4()}"
    key, wrapped = vault_of(session).new_data_key(owner)
    secret = signing.new_secret()
    now = clock.now()
    endpoint = WebhookEndpoint(
        description=description,
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
    forget_cache(session)
    return endpoint, secret


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise WebhookError(N_("no webhook endpoint %(id)s"), id=endpoint_id)
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
        endpoint.description = _description(description)
    endpoint.updated_at = clock.now()
    session.flush()
    forget_cache(session)
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
    forget_cache(session)
    return count


def enable(session: Session, endpoint: WebhookEndpoint) -> None:
    endpoint.status = EndpointStatus.ACTIVE
    endpoint.failing_since = None
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    endpoint.updated_at = clock.now()
    session.flush()
    forget_cache(session)


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
    forget_cache(session)


# --- a test event, redelivery ---------------------------------------------------


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
            raise WebhookError(DISABLED, id=endpoint.id)
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
