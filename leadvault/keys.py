"""Master key rotation: re-wrap data keys, never touch field ciphertexts."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault.crypto import WrappedKey
from leadvault.db import vault_of
from leadvault.models import InboxItem, Lead, OutboxMessage

# Tables whose rows carry a data key of their own (same column names in each:
# payload_owner, payload_key, payload_key_version). Packages add theirs.
_STANDALONE: list[Any] = [OutboxMessage, InboxItem]


def register_sealed_table(model: Any) -> None:
    if model not in _STANDALONE:
        _STANDALONE.append(model)


def count_using(session: Session, version: int) -> int:
    """Data keys (leads, lead-less outbox rows, inbox items) still wrapped by ``version``."""
    total = session.scalar(sa.select(sa.func.count()).where(Lead.key_version == version)) or 0
    for model in _STANDALONE:
        total += (
            session.scalar(sa.select(sa.func.count()).where(model.payload_key_version == version))
            or 0
        )
    return total


def count_stale(session: Session, active: int) -> int:
    total = session.scalar(sa.select(sa.func.count()).where(Lead.key_version != active)) or 0
    for model in _STANDALONE:
        total += (
            session.scalar(
                sa.select(sa.func.count()).where(
                    model.payload_key_version.is_not(None), model.payload_key_version != active
                )
            )
            or 0
        )
    return total


def rewrap_batch(session: Session, *, limit: int = 500) -> int:
    """Re-wrap up to ``limit`` data keys under the active master key; returns how many."""
    vault = vault_of(session)
    active = vault.keyring.active_version
    done = 0
    for lead in session.scalars(
        sa.select(Lead).where(Lead.key_version != active).limit(limit).with_for_update()
    ):
        new = vault.rewrap(WrappedKey(lead.wrapped_key, lead.key_version), lead.id)
        lead.wrapped_key, lead.key_version = new.wrapped, new.version
        done += 1
    for model in _STANDALONE:
        if done >= limit:
            break
        rows = session.scalars(
            sa.select(model)
            .where(model.payload_key_version.is_not(None), model.payload_key_version != active)
            .limit(limit - done)
            .with_for_update()
        )
        for row in rows:
            assert row.payload_key is not None and row.payload_key_version is not None
            new = vault.rewrap(
                WrappedKey(row.payload_key, row.payload_key_version), row.payload_owner
            )
            row.payload_key, row.payload_key_version = new.wrapped, new.version
            done += 1
    session.flush()
    return done
