"""Looks at a lead's decrypted personal data on pages behind signed links: the
salesperson's handoff page, the lead's own preference center and correction form.

Each answer that shows such data is one ``lead.revealed`` entry in the audit trail,
as the console's, the API's and the command line's reveal are. Who: ``salesperson:<id>``
or ``subject`` (whoever holds the lead's link); what: the names of the fields shown
and the page; never a value.

These pages open from links in mails, by GET, whose transaction is read-only (mail
scanners follow links: a GET changes nothing else). So a GET's entry is written in a
short transaction of its own before the page is rendered: no look without its entry,
and a write that fails is the ordinary error page, not a page with the data. A
scanner's fetch is recorded too: the data was sent to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from flask import current_app, g, request
from sqlalchemy.orm import Session

from leadvault import audit, db


def record(lead_id: uuid.UUID, *, actor: str, fields: Iterable[str], via: str) -> None:
    """Record that this request's answer shows the lead's ``fields`` (decrypted).

    In a request that may write (a POST answered with the page again), the entry joins
    the request's transaction and is kept even when the answer is a refusal (4xx): the
    look happened all the same. Such a view must have undone the refused change first
    (a savepoint), since everything in the transaction is then committed.
    """
    if request.method == "HEAD":
        return  # the answer has no body: nothing is shown
    detail = {"fields": sorted(set(fields)), "via": via}
    session = db.session()
    if session.info.get("read_only"):
        factory = current_app.extensions["leadvault"].session_factory
        with db.write_beside(factory) as writer:
            _append(writer, lead_id, actor, detail)
        return
    _append(session, lead_id, actor, detail)
    g.commit_despite_error = True


def _append(session: Session, lead_id: uuid.UUID, actor: str, detail: dict[str, Any]) -> None:
    audit.record_lead(
        session,
        lead_id,
        audit.Action.LEAD_REVEALED,
        actor=actor,
        detail=detail,
        ip=request.remote_addr,
    )
