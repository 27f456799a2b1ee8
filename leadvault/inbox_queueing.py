"""Work put into the inbox: a request's payload sealed into an inbox row, written in the
caller's transaction (:func:`enqueue`), or bound beforehand to be run by the caller
(:func:`sealed_insert`, :func:`sealed_row`). The worker takes the rows in batches
(``leadvault.inbox``).
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.crypto import Vault
from leadvault.db import vault_of
from leadvault.models import InboxItem, InboxStatus
from leadvault.prepared import Bound, Prepared
from leadvault.sealed import seal

FIELD = "inbox"  # the field a payload is sealed for (``leadvault.inbox`` unseals it)


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    subject_email: str | None = None,
    subject_index: bytes | None = None,
) -> None:
    """Store the work sealed, in the caller's transaction (a plain INSERT, nothing else).

    ``subject_index``: the blind index of ``subject_email`` when the caller has it
    already (normalising an address costs more than the INSERT)."""
    sealed_insert(
        session.get_bind().dialect,
        vault_of(session),
        kind,
        payload,
        subject_email=subject_email,
        subject_index=subject_index,
    ).rowcount(session.connection())


def sealed_insert(
    dialect: Dialect,
    vault: Vault,
    kind: str,
    payload: dict[str, Any],
    *,
    subject_email: str | None = None,
    subject_index: bytes | None = None,
) -> Bound:
    """The INSERT of an inbox row holding ``payload`` sealed, its parameters bound for
    ``dialect`` (run it with ``Bound.rowcount``): sealed and bound before the write, so
    the public submission does neither under SQLite's write lock (``db.short_write``)."""
    row = sealed_row(vault, kind, payload, subject_email=subject_email, subject_index=subject_index)
    return _insert_on(dialect).bind(row)


def sealed_row(
    vault: Vault,
    kind: str,
    payload: dict[str, Any],
    *,
    subject_email: str | None = None,
    subject_index: bytes | None = None,
) -> dict[str, Any]:
    """The values of an inbox row holding ``payload`` sealed (by column: ``ROW_COLUMNS``),
    for callers that write it within a statement of their own (the submission's, on
    PostgreSQL)."""
    sealed = seal(vault, FIELD, payload)
    if subject_index is None and subject_email:
        subject_index = vault.blind_index(subject_email)
    now = clock.now()
    return {
        "kind": kind,
        "received_at": now,
        "payload": sealed.payload,
        "payload_owner": sealed.owner,
        "payload_key": sealed.key,
        "payload_key_version": sealed.key_version,
        "status": InboxStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "subject_index": subject_index,
    }


# The columns :func:`sealed_row` fills (the others start NULL).
ROW_COLUMNS = (
    "kind",
    "received_at",
    "payload",
    "payload_owner",
    "payload_key",
    "payload_key_version",
    "status",
    "attempts",
    "next_attempt_at",
    "subject_index",
)


@functools.lru_cache(maxsize=8)
def _insert_on(dialect: Dialect) -> Prepared:
    # Compiled once per dialect and run on the driver's cursor: SQLAlchemy's execution
    # of it cost more than the write itself on this, the hottest path. Inline: the new
    # row's id is not wanted (no RETURNING).
    table = InboxItem.__table__
    values = {name: sa.bindparam(name, type_=table.c[name].type) for name in ROW_COLUMNS}
    return Prepared(sa.insert(table).values(values).inline(), dialect)
