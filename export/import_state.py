"""What an import carries from chunk to chunk (``ImportRun``) and what the database holds
about one chunk's addresses (``Known``); ``export.import_lines`` stores the lines.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from consent.models import Consent, ConsentText, Suppression
from export.models import ImportPermission
from leadvault.models import Lead


@dataclasses.dataclass
class ImportRun:
    batch: str
    purposes: tuple[str, ...]
    language: str
    dry_run: bool
    # Blind index -> the first line with that address (duplicates within the file).
    seen: dict[bytes, int] = dataclasses.field(default_factory=dict)
    texts: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Known:
    """What the database holds about a chunk's addresses, read with one query per table
    for the whole chunk (one per line made a large import mostly round trips), then kept
    up to date with what the chunk's own lines store."""

    suppressed: set[bytes]
    leads: dict[bytes, Lead]
    consents: dict[uuid.UUID, dict[str, Consent]]
    permissions: dict[uuid.UUID, ImportPermission]
    # Rows the chunk's lines refer to, held here: the session's identity map is weak.
    texts: dict[int, ConsentText] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, session: Session, indexes: Collection[bytes], *, lock: bool) -> Known:
        wanted = list(indexes)
        suppressed = set(
            session.scalars(
                sa.select(Suppression.email_index).where(Suppression.email_index.in_(wanted))
            )
        )
        query = (
            sa.select(Lead)
            .where(Lead.email_index.in_(wanted))
            .options(selectinload(Lead.attributes))
            .order_by(Lead.id)  # locked in one order by every import
        )
        if lock:
            # As the worker locks a lead it stores a submission for: our decisions about
            # its consent hold until the chunk commits.
            query = query.with_for_update(of=Lead)
        found = {lead.email_index: lead for lead in session.scalars(query)}
        ids = [lead.id for lead in found.values()]
        consents: dict[uuid.UUID, dict[str, Consent]] = {lead_id: {} for lead_id in ids}
        permissions: dict[uuid.UUID, ImportPermission] = {}
        if ids:
            for row in session.scalars(sa.select(Consent).where(Consent.lead_id.in_(ids))):
                consents[row.lead_id][row.purpose] = row
            permissions = {
                row.lead_id: row
                for row in session.scalars(
                    sa.select(ImportPermission).where(ImportPermission.lead_id.in_(ids))
                )
            }
        return cls(suppressed, found, consents, permissions)
