"""Consented click tracking: a signed redirect that only leads to the template's links.

A tracked link is ``/n/<token>``; the token (signed, salted for this purpose)
names the send, the link's position in the template and its target. The target
must be the template's link at that position while the send is known, so no
one can make Leadvault redirect elsewhere. Only leads who confirmed
``tracking`` get such links; a click is counted (once per mail and link) as a
``mail_clicked`` scoring event only while that consent holds.

Mail scanners fetch links before the reader does. GET (and HEAD) therefore
change nothing: they answer a tiny page whose script (or, without scripts,
whose button) POSTs the click and then goes on to the target. Scanners fetch
and follow redirects but do not submit forms; those that run scripts in a
sandbox can still count once per link, never more.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from consent import service as consent_service
from leadvault import clock, leads
from leadvault.crypto import TokenInvalid
from leadvault.db import dialect_of, vault_of
from leadvault.model_base import ROW_ID_MAX
from nurture import sequences
from nurture.mails import CLICK_TOKEN
from nurture.models import Click, Send
from scoring import events as scoring_events

TRACKING = "tracking"


@dataclasses.dataclass(frozen=True)
class Link:
    send_id: int
    index: int
    target: str
    send: Send | None  # None when the lead was erased since


def resolve(session: Session, token: str) -> Link:
    """Raises TokenInvalid for a token that is not ours or a target not in the template."""
    payload: Any = vault_of(session).unsign(CLICK_TOKEN, token, max_age_seconds=None)
    if not isinstance(payload, dict):
        raise TokenInvalid("malformed click token")
    send_id, index, target = payload.get("s"), payload.get("k"), payload.get("u")
    if not (isinstance(send_id, int) and isinstance(index, int) and isinstance(target, str)):
        raise TokenInvalid("malformed click token")
    # A send id no row can have (ids are 32-bit on PostgreSQL) is not looked up: beyond
    # 64 bits it overflowed SQLite's driver, beyond 31 PostgreSQL's column (a 500).
    if not 0 < send_id <= ROW_ID_MAX:
        raise TokenInvalid("click token with a send id no send can have")
    if not target.startswith(("https://", "http://")):
        raise TokenInvalid("click token without a web target")
    send = session.get(Send, send_id)
    if send is not None:
        try:
            sequence = sequences.definition(session, send.sequence_key, send.version)
            links = sequence.mail_for(send.mail, send.language).links
        except (sequences.SequenceNotFound, KeyError):
            links = ()
        if index < 0 or index >= len(links) or links[index] != target:
            raise TokenInvalid("the target is not a link of this mail")
    return Link(send_id, index, target, send)


def record(session: Session, link: Link) -> bool:
    """Count a click once per mail and link, only with tracking consent; True when counted."""
    send = link.send
    if send is None or not send.tracked:
        return False
    if not consent_service.has_consent(session, send.lead_id, TRACKING):
        return False
    insert = postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert
    statement = (
        insert(Click)
        .values(send_id=send.id, link=link.index, lead_id=send.lead_id, clicked_at=clock.now())
        .on_conflict_do_nothing(index_elements=["send_id", "link"])
        .execution_options(preserve_rowcount=True)
    )
    if session.execute(statement).rowcount != 1:
        return False
    lead = leads.get(session, send.lead_id)
    if lead is not None:
        leads.touch(lead)
    scoring_events.record_event(
        session,
        send.lead_id,
        "mail_clicked",
        {"sequence": send.sequence_key, "step": send.step, "link": link.index},
        clock.now(),
    )
    return True


def clicks_of(session: Session, lead_id: uuid.UUID) -> list[Click]:
    return list(
        session.scalars(sa.select(Click).where(Click.lead_id == lead_id).order_by(Click.clicked_at))
    )
