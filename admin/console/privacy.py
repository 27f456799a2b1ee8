"""The console's privacy pages (issue 12.7): both hash chains verified on request, the
erasure and access requests, the retention periods in effect, the audit trail with
filters (who, action, object, dates; newest first, paged) and a lead's consent proof
as a printable page. Nothing here shows personal data.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Response, current_app, request

from admin import auth
from admin.console import lead_detail, trail
from admin.console.views import _error, _lead_or_404, bp, page
from admin.permissions import Permission
from leadvault import audit, clock, db
from leadvault.i18n import N_

PAGE = 50
# What the requests log lists: erasures (asked for by the lead, done by staff or by the
# retention rules) and copies of a lead's data (its own download, a staff export).
REQUEST_ACTIONS = (
    audit.Action.LEAD_ERASED,
    audit.Action.LEAD_EXPORTED,
    audit.Action.LEAD_ACCESS_EXPORTED,
)
RETENTION = (
    ("optin_max_age_days", N_("Unconfirmed opt-in requests (and their leads) are erased after")),
    ("inactive_lead_days", N_("Leads without consent and without activity are erased after")),
    ("proof_retention_days", N_("Proof of withdrawn or expired consent is kept for")),
    ("sent_mail_retention_days", N_("Bodies of sent mails are kept for")),
)


class _BadFilter(ValueError):
    pass


class _NotCatalogued(ValueError):
    """A code the filter's select does not offer (a hand-made URL): the page marks the
    select instead of showing an empty trail as if no entry matched."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _code(name: str, catalogue: type[audit.Catalogued], message: str) -> str | None:
    value = _text(name, 40)
    if value is not None and value not in catalogue.codes():
        raise _NotCatalogued(name, message)
    return value


def _text(name: str, limit: int) -> str | None:
    value = (request.args.get(name) or "").strip()
    if len(value) > limit or not value.isprintable():
        raise _BadFilter(N_("A filter value is too long."))
    return value or None


def _day(name: str) -> dt.date | None:
    value = _text(name, 10)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _BadFilter(N_("A date must look like 2025-03-31.")) from None


def _audit_filters() -> tuple[audit.Filters, dict[str, str]]:
    """The trail's filters and the query arguments that repeat them (for paging links)."""
    since, until = _day("since"), _day("until")
    filters = audit.Filters(
        actor=_text("actor", 80),
        action=_code(
            "action", audit.Action, N_("There is no such action: choose one from the list.")
        ),
        object_type=_code(
            "object_type",
            audit.ObjectType,
            N_("There is no such kind of object: choose one from the list."),
        ),
        object_id=_text("object_id", 64),
        since=dt.datetime.combine(since, dt.time(), dt.UTC) if since else None,
        # The calendar's last day has no next one: nothing lies after it.
        until=dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)
        if until and until < dt.date.max
        else None,
    )
    names = ("actor", "action", "object_type", "object_id", "since", "until")
    args = {name: request.args[name] for name in names if request.args.get(name)}
    return filters, args


@bp.get("/privacy")
@auth.require(Permission.AUDIT_READ)
def privacy() -> Response:
    from consent import ledger
    from leadvault.app import runtime

    errors: dict[str, str] = {}
    try:
        filters, args = _audit_filters()
    except _BadFilter as exc:
        return _error(400, str(exc))
    except _NotCatalogued as exc:
        errors[exc.field] = str(exc)
        filters, args = audit.Filters(), {}
    before_raw = request.args.get("before") or ""
    if before_raw and not (before_raw.isdecimal() and len(before_raw) < 10):
        return _error(400, N_("This page of the list no longer exists; start again."))
    session = db.session()
    entries = (
        []
        if errors
        else audit.entries(
            session, filters, before=int(before_raw) if before_raw else None, limit=PAGE
        )
    )
    verdicts = None
    if request.args.get("verify") == "1":
        verdicts = {"ledger": ledger.verify(session), "audit": audit.verify(session)}
    requests_log: list[Any] = []
    if auth.can(Permission.PRIVACY_REQUESTS):
        requests_log = audit.entries(session, audit.Filters(actions=REQUEST_ACTIONS), limit=20)
    settings = runtime(current_app).settings
    return page(
        "console/privacy.html",
        400 if errors else 200,
        section="privacy",
        filter_errors=errors,
        rows=trail.rows(session, entries),
        filters=filters,
        filter_args=args,
        verdicts=verdicts,
        older=entries[-1].id if len(entries) == PAGE else None,
        actions=trail.choices(audit.Action),
        kinds=trail.choices(audit.ObjectType),
        actor_label=trail.actor_label,
        requests_log=[(entry, audit.detail_of(entry)) for entry in requests_log],
        retention=[(label, getattr(settings, name)) for name, label in RETENTION],
    )


# What each consent ledger event is called on the proof page (the code stays beside it).
LEDGER_EVENT_LABELS = {
    "requested": N_("Consent asked for"),
    "confirmed": N_("Confirmed"),
    "withdrawn": N_("Withdrawn"),
    "expired": N_("Expired unconfirmed"),
    "erased": N_("Erased"),
    "pruned": N_("Proof removed after its retention period"),
}


@bp.get("/leads/<uuid:lead_id>/proof")
@auth.require(Permission.LEDGER_READ)
def proof(lead_id: uuid.UUID) -> Response:
    """A lead's consent proof as a printable page (for an authority): the ledger entries
    with their hashes and the text versions; no personal data."""
    found = _lead_or_404(lead_id)
    session = db.session()
    return page(
        "console/proof.html",
        section="privacy",
        lead=lead_detail.summary(session, found),
        consents=lead_detail.consent_rows(session, found.id),
        entries=lead_detail.proof(session, found.id),
        event_labels=LEDGER_EVENT_LABELS,
        now_utc=clock.now(),
    )
