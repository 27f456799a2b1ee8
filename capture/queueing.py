"""The endpoint's write: a validated submission queued as one sealed inbox row, which the
worker stores later (``capture.service.store_submission``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from capture.models import Form
from consent.ledger import RequestMeta
from leadvault import clock, inbox_queueing
from leadvault.crypto import Vault
from leadvault.models import InboxItem, SpentToken
from leadvault.prepared import Bound, Prepared


@dataclasses.dataclass(frozen=True)
class ValidSubmission:
    email: str
    profile: dict[str, str]
    message: str | None
    purposes: list[str]
    source: dict[str, str]
    # The address's blind-index form when validation computed it (the endpoint), so
    # the address is not validated a second time for its blind index.
    email_index_form: str | None = None


SUBMISSION = "capture.submission"


def accept(
    session: Session,
    form: Form,
    data: ValidSubmission,
    *,
    language: str,
    meta: RequestMeta,
    email_index: bytes | None = None,
) -> None:
    """Queue a validated submission; the worker stores it (see :func:`store_submission`).

    The request only writes one sealed inbox row, so the public endpoint stays
    fast under bursts and holds the database's write lock for a moment only.
    ``email_index``: the address's blind index, when the caller computed it already.
    """
    inbox_queueing.enqueue(
        session,
        SUBMISSION,
        _payload(form, data, language, meta),
        subject_email=data.email,
        subject_index=email_index,
    )


def sealed_submission(
    dialect: Dialect,
    vault: Vault,
    form: Form,
    data: ValidSubmission,
    *,
    language: str,
    meta: RequestMeta,
    email_index: bytes | None = None,
) -> Bound:
    """:func:`accept`'s INSERT, sealed and bound for ``dialect`` before the endpoint's
    write (``db.short_write``) runs it: on SQLite, not under the write lock."""
    return inbox_queueing.sealed_insert(
        dialect,
        vault,
        SUBMISSION,
        _payload(form, data, language, meta),
        subject_email=data.email,
        subject_index=email_index,
    )


def spend_and_accept(
    connection: sa.Connection,
    vault: Vault,
    keys: Sequence[tuple[str, dt.datetime]],
    form: Form,
    data: ValidSubmission,
    *,
    language: str,
    meta: RequestMeta,
    email_index: bytes | None = None,
) -> bool:
    """PostgreSQL: spend the single-use ``keys`` (as ``links.spend_all``) and queue the
    submission (as :func:`accept`) in one statement: one round trip, and in autocommit
    its own transaction (BEGIN and COMMIT were two more). False when a key was spent
    before: then nothing is queued, and the submission's other keys are spent all the
    same (as ``links.spend_all`` leaves them)."""
    row = inbox_queueing.sealed_row(
        vault,
        SUBMISSION,
        _payload(form, data, language, meta),
        subject_email=data.email,
        subject_index=email_index,
    )
    params: dict[str, Any] = {"spent_at": clock.now(), **row}
    for i, (key, until) in enumerate(keys):
        params[f"nonce_{i}"] = key
        params[f"expires_at_{i}"] = until
    statement = _spend_and_queue_on(len(keys), connection.dialect)
    return statement.first(connection, params) is not None


@functools.lru_cache(maxsize=16)
def _spend_and_queue_on(count: int, dialect: Dialect) -> Prepared:
    """:func:`_spend_and_queue` compiled for ``dialect``, run on the driver's cursor
    (SQLAlchemy's execution of it cost more CPU than psycopg's)."""
    return Prepared(_spend_and_queue(count), dialect)


def _spend_and_queue(count: int) -> sa.Insert:
    """WITH spent_0 AS (INSERT INTO spent_tokens … ON CONFLICT DO NOTHING RETURNING …), …
    INSERT INTO inbox … SELECT … WHERE EXISTS (SELECT … FROM spent_0) AND … RETURNING id;
    built once per number of keys (a CTE per key: a multi-row VALUES is compiled anew
    on every execution). A data-modifying CTE runs to completion whatever the outer
    statement does, so a replay's fresh keys are spent too."""
    spent_table = SpentToken.__table__
    inbox_table = InboxItem.__table__
    spent = [
        postgresql.insert(spent_table)
        .values(
            nonce=sa.bindparam(f"nonce_{i}", type_=spent_table.c.nonce.type),
            spent_at=sa.bindparam("spent_at", type_=spent_table.c.spent_at.type),
            expires_at=sa.bindparam(f"expires_at_{i}", type_=spent_table.c.expires_at.type),
        )
        .on_conflict_do_nothing(index_elements=[spent_table.c.nonce])
        .returning(spent_table.c.nonce)
        .cte(f"spent_{i}")
        for i in range(count)
    ]
    # The dialect types each parameter (…::VARCHAR) but bytes: in a SELECT list an
    # untyped one (a NULL subject index) would be text, which a bytea column refuses.
    # (Not a cast to VARCHAR(n): that would cut a long value instead of refusing it.)
    values = [
        sa.cast(bind, column.type) if isinstance(column.type, sa.LargeBinary) else bind
        for column in (inbox_table.c[name] for name in inbox_queueing.ROW_COLUMNS)
        for bind in [sa.bindparam(column.name, type_=column.type)]
    ]
    everything_new = sa.and_(*(sa.exists(sa.select(cte.c.nonce)) for cte in spent))
    return (
        sa.insert(inbox_table)
        .from_select(list(inbox_queueing.ROW_COLUMNS), sa.select(*values).where(everything_new))
        .returning(inbox_table.c.id)
    )


def _payload(form: Form, data: ValidSubmission, language: str, meta: RequestMeta) -> dict:
    return {
        "form_id": form.id,
        "language": language,
        "email": data.email,
        "profile": data.profile,
        "message": data.message,
        "purposes": data.purposes,
        "source": data.source,
        "ip": meta.ip,
        "user_agent": meta.user_agent,
        "received_at": clock.now().isoformat(),
    }
