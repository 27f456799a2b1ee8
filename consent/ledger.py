"""The append-only, hash-chained consent ledger.

Each entry's hash covers its own fields and its predecessor's hash, so
editing, inserting or deleting any entry breaks the chain from there on.
Appends lock one head row, so concurrent transactions never fork the chain.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent.models import ConsentText, LedgerEntry, LedgerEvent, LedgerHead
from leadvault import clock
from leadvault.crypto import sha256_hex, truncate_ip
from leadvault.db import vault_of
from leadvault.web import RequestMeta

GENESIS = "0" * 64
HEAD_ID = 1


def _canonical(entry: LedgerEntry) -> str:
    fields = {
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
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def entry_hash(entry: LedgerEntry) -> str:
    return sha256_hex(_canonical(entry))


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
) -> LedgerEntry:
    head = session.scalars(
        sa.select(LedgerHead).where(LedgerHead.id == HEAD_ID).with_for_update()
    ).one()
    meta = meta or RequestMeta()
    entry = LedgerEntry(
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
        prev_hash=head.last_hash,
    )
    entry.entry_hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    head.last_id = entry.id
    head.last_hash = entry.entry_hash
    session.flush()
    return entry


@dataclasses.dataclass(frozen=True)
class Verdict:
    checked: int
    broken_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_id is None and self.reason is None


def _entries(session: Session, batch: int = 1000) -> Iterator[LedgerEntry]:
    last = 0
    while True:
        rows = list(
            session.scalars(
                sa.select(LedgerEntry)
                .where(LedgerEntry.id > last)
                .order_by(LedgerEntry.id)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        session.expunge_all()


def verify(session: Session) -> Verdict:
    """Walk the chain from the start; name the first entry that does not fit.

    A pruned entry (its proof purged after the retention period) cannot be
    re-hashed, so it is accepted only when a later ``pruned`` entry, itself
    hashed into the chain, lists its id.
    """
    previous = GENESIS
    checked = 0
    last_id = 0
    unlisted: list[int] = []
    for entry in _entries(session):
        if entry.prev_hash != previous:
            return Verdict(checked, entry.id, "does not follow its predecessor (edited or removed)")
        if entry.pruned_at is not None:
            unlisted.append(entry.id)
        elif entry_hash(entry) != entry.entry_hash:
            return Verdict(checked, entry.id, "its content does not match its hash (edited)")
        if entry.event == LedgerEvent.PRUNED and entry.pruned_at is None:
            listed = _listed_ids(entry.detail)
            unlisted = [i for i in unlisted if i not in listed]
        previous = entry.entry_hash
        last_id = entry.id
        checked += 1
    if unlisted:
        return Verdict(checked, unlisted[0], "marked as pruned without a pruning record")
    head = session.get(LedgerHead, HEAD_ID)
    if head is None or head.last_hash != previous or head.last_id != last_id:
        return Verdict(checked, None, "the newest entries were removed (head does not match)")
    return Verdict(checked)


def _listed_ids(detail: str | None) -> set[int]:
    try:
        return {int(part) for part in (detail or "").split(",") if part}
    except ValueError:
        return set()


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
