"""The console's privacy pages (issue 12.7): both hash chains verified on request, the
erasure and access requests, the retention periods in effect, the audit trail with
filters (who, action, object, dates; newest first, paged) and a lead's consent proof
as a printable page. Nothing here shows personal data.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app, request

from admin import auth
from admin.console import lead_detail, queries, trail
from admin.console.views import _lead_or_404, bp, page
from admin.permissions import Permission
from leadvault import audit, clock, days, db, i18n
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


# What each filter is called where a message names it (the form's labels).
LABELS = {"since": N_("From"), "until": N_("To"), "actor": N_("Who"), "object_id": N_("Object")}
FILTER_NAMES = ("actor", "action", "object_type", "object_id", "since", "until")


def _text(name: str, limit: int) -> str | None:
    value = (request.args.get(name) or "").strip()
    if len(value) > limit or not value.isprintable():
        raise queries.FilterError(N_("%(field)s: the value is too long."), LABELS.get(name))
    return value or None


def _code(name: str, catalogue: type[audit.Catalogued], message: str) -> str | None:
    """Only a code the select offers: another (a hand-made URL) would match no entry
    and look like an empty trail."""
    value = _text(name, 40)
    if value is not None and value not in catalogue.codes():
        raise queries.FilterError(message)
    return value


def _audit_filters() -> tuple[audit.Filters, dict[str, str]]:
    """The trail's filters, and the message of each that cannot be used (by query
    argument; the others are kept, so the page can mark the one to correct)."""
    errors: dict[str, str] = {}

    def read(name: str, reader: Any, *more: Any) -> Any:
        try:
            return reader(*more)
        except queries.FilterError as exc:
            errors[name] = exc.text()
            return None

    since = read("since", queries.read_day, request.args.get("since"), LABELS["since"])
    until = read("until", queries.read_day, request.args.get("until"), LABELS["until"])
    if "until" not in errors:
        read("until", queries.check_span, since, until, LABELS)
    filters = audit.Filters(
        actor=read("actor", _text, "actor", 80),
        action=read(
            "action",
            _code,
            "action",
            audit.Action,
            N_("There is no such action: choose one from the list."),
        ),
        object_type=read(
            "object_type",
            _code,
            "object_type",
            audit.ObjectType,
            N_("There is no such kind of object: choose one from the list."),
        ),
        object_id=read("object_id", _text, "object_id", 64),
        since=days.start_of(since),
        until=days.end_of(until),  # the "to" day included
    )
    return filters, errors


def _before(errors: dict[str, str]) -> int | None:
    """The page cursor (the last id of the page before); a bad one is an error too."""
    raw = request.args.get("before") or ""
    if raw and not (raw.isdecimal() and raw.isascii() and len(raw) < 10):
        errors["before"] = i18n.gettext(N_("This page of the list no longer exists; start again."))
        return None
    return int(raw) if raw else None


@bp.get("/privacy")
@auth.require(Permission.AUDIT_READ)
def privacy() -> Response:
    from consent import ledger
    from leadvault.app import runtime

    filters, errors = _audit_filters()
    before = _before(errors)
    # What was typed, as typed: repeated in the form (a marked field keeps its value to
    # correct) and in the paging link.
    typed = {name: request.args[name][:100] for name in FILTER_NAMES if request.args.get(name)}
    session = db.session()
    entries = [] if errors else audit.entries(session, filters, before=before, limit=PAGE)
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
        filter_args=typed,
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
