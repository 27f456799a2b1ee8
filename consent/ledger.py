"""The append-only, hash-chained consent ledger.

Each entry's hash covers its own fields and its predecessor's hash, so
editing, inserting or deleting any entry breaks the chain from there on.
Appends lock one head row, so concurrent transactions never fork the chain.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent.models import ConsentText, LedgerEntry, LedgerEvent, LedgerHead
from leadvault import batch, clock
from leadvault.chain import GENESIS, HEAD_ID, Chain, Cut, Verdict
from leadvault.crypto import truncate_ip
from leadvault.db import vault_of
from leadvault.web import RequestMeta

__all__ = ["GENESIS", "HEAD_ID", "Verdict", "append", "entry_hash", "history", "prune", "verify"]


def _canonical(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "created_at": entry.created_at.isoformat(timespec="microseconds"),
        "event": entry.event,
        "subject": entry.subject,
        "purpose": entry.purpose,
        "form_ref": entry.form_ref,
        "text_id": entry.text_id,
        "text_version": entry.text_version,
        "text_sha256": entry.text_sha256,
        "ip_prefix": entry.ip_prefix,
        "user_agent_hash": entry.user_agent_hash,
        "detail": entry.detail,
    }


def _listed_ids(detail: str | None) -> set[int]:
    try:
        return {int(part) for part in (detail or "").split(",") if part}
    except ValueError:
        return set()


# A pruned entry (its proof purged after the retention period) cannot be
# re-hashed, so it is accepted only when a later ``pruned`` entry, itself
# hashed into the chain, lists its id.
CHAIN = Chain(
    entry_model=LedgerEntry,
    head_model=LedgerHead,
    canonical=_canonical,
    purged=lambda entry: entry.pruned_at is not None,
    lists=lambda entry: _listed_ids(entry.detail) if entry.event == LedgerEvent.PRUNED else set(),
)


def entry_hash(entry: LedgerEntry) -> str:
    return CHAIN.hash_of(entry)


@dataclasses.dataclass(slots=True)
class Queued:
    """An entry of a worker's batch: its columns, linked and written at the batch's end
    (one executemany, ``Chain.insert_all``); no ORM object, nothing reads it back."""

    created_at: dt.datetime
    event: str
    subject: str
    purpose: str | None
    form_ref: str | None
    text_id: int | None
    text_version: int | None
    text_sha256: str | None
    ip_prefix: str | None
    user_agent_hash: str | None
    detail: str | None
    prev_hash: str = ""
    entry_hash: str = ""
    pruned_at: dt.datetime | None = None
    # Its canonical JSON, made when it is queued (in a SQLite batch's snapshot), linked
    # under the head's lock by one hash (Chain.insert_all).
    cut: Cut | None = None


def append(
    session: Session,
    *,
    event: LedgerEvent,
    subject: str,
    purpose: str | None = None,
    form_ref: str | None = None,
    text: ConsentText | None = None,
    meta: RequestMeta | None = None,
    detail: str | None = None,
) -> LedgerEntry | None:
    """Append an entry (flushed); in a worker's batch queue it for the batch's end and
    return None."""
    meta = meta or RequestMeta()
    work = batch.active(session)
    entry = (Queued if work is not None else LedgerEntry)(
        created_at=clock.now(),
        event=event,
        subject=subject,
        purpose=purpose,
        form_ref=form_ref,
        text_id=text.id if text else None,
        text_version=text.version if text else None,
        text_sha256=text.sha256 if text else None,
        ip_prefix=truncate_ip(meta.ip),
        user_agent_hash=(
            vault_of(session).keyed_hash("user-agent", meta.user_agent)[:32]
            if meta.user_agent
            else None
        ),
        detail=detail,
    )
    # In a worker's batch the entries are linked together at its end, last of its
    # deferred work, so the head is locked once and briefly (leadvault.batch).
    if isinstance(entry, Queued):
        entry.cut = CHAIN.cut(entry)
        batch.defer(session, "consent.ledger", entry, _chain, order=1000)
        return None
    CHAIN.append(session, entry)
    return entry


def _chain(session: Session, entries: list[Queued]) -> None:
    CHAIN.insert_all(session, entries, [entry.cut or CHAIN.cut(entry) for entry in entries])


def verify(session: Session) -> Verdict:
    """Walk the chain from the start; name the first entry that does not fit."""
    return CHAIN.verify(session)


_DETAIL_MAX = 200


def prune(session: Session, entry_ids: list[int]) -> int:
    """Clear the proof in these entries and append ``pruned`` records listing them."""
    if not entry_ids:
        return 0
    now = clock.now()
    rows = list(
        session.scalars(
            sa.select(LedgerEntry).where(
                LedgerEntry.id.in_(entry_ids), LedgerEntry.pruned_at.is_(None)
            )
        )
    )
    for row in rows:
        row.subject = "-"
        row.purpose = row.form_ref = row.text_sha256 = None
        row.text_id = row.text_version = None
        row.ip_prefix = row.user_agent_hash = row.detail = None
        row.pruned_at = now
    session.flush()
    chunk: list[str] = []
    for row_id in sorted(row.id for row in rows):
        if len(",".join([*chunk, str(row_id)])) > _DETAIL_MAX:
            append(session, event=LedgerEvent.PRUNED, subject="-", detail=",".join(chunk))
            chunk = []
        chunk.append(str(row_id))
    if chunk:
        append(session, event=LedgerEvent.PRUNED, subject="-", detail=",".join(chunk))
    return len(rows)


def history(session: Session, subject: str) -> list[LedgerEntry]:
    return list(
        session.scalars(
            sa.select(LedgerEntry).where(LedgerEntry.subject == subject).order_by(LedgerEntry.id)
        )
    )
