"""Leads in a worker's batch (``leadvault.batch``): those it holds, and those it creates,
kept as their queued rows' values.

A new lead in a batch is a :class:`NewLead`, not an ORM object: building and adding a
Lead and its LeadAttributes per new lead cost more than a tenth of the batch. What
reads a lead (``leads.data_key``, ``email_of``, ``attributes_of``, the batch's
scoring) reads a NewLead as it reads a Lead; a later item of its address gets the
stored Lead (:func:`stored_lead`), which changes as any does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from leadvault import batch
from leadvault.crypto import DataKey
from leadvault.models import Lead, LeadAttribute

# batch.cached: the batch's leads by blind index (``leads.get_or_create`` reads them once).
KNOWN = "leads.by_index"


@dataclasses.dataclass(slots=True)
class NewAttribute:
    """An attribute of a :class:`NewLead`: its queued row's values."""

    name: str
    value: bytes
    updated_at: dt.datetime


@dataclasses.dataclass(slots=True)
class NewLead:
    """A lead a worker's batch created: its queued row's values and its attributes'."""

    id: uuid.UUID
    email_index: bytes
    email: bytes
    wrapped_key: bytes
    key_version: int
    language: str
    created_at: dt.datetime
    last_activity_at: dt.datetime
    attributes: list[NewAttribute] = dataclasses.field(default_factory=list)


AnyLead = Lead | NewLead


def held(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, AnyLead]:
    """Of these leads, those the worker's batch holds with their attributes loaded."""
    work = batch.active(session)
    leads: dict[bytes, AnyLead] | None = work.cache.get(KNOWN) if work else None
    if not leads:
        return {}
    wanted = set(ids)
    return {
        lead.id: lead
        for lead in leads.values()
        if lead.id in wanted
        and (isinstance(lead, NewLead) or "attributes" not in sa.inspect(lead).unloaded)
    }


def stored_lead(session: Session, new: NewLead) -> Lead:
    """A lead an earlier item of the batch created, as stored, with its attributes (a
    later item of its address changes it): the batch's queued rows are written first."""
    batch.write_queued(session)
    query = sa.select(Lead).where(Lead.id == new.id).options(selectinload(Lead.attributes))
    return session.scalars(query).one()


def queue_attributes(
    session: Session,
    lead_id: uuid.UUID,
    key: DataKey,
    values: Mapping[str, str | None],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Queue the rows of the non-empty ``values`` with the batch's others."""
    table = LeadAttribute.__table__
    rows: list[dict[str, Any]] = []
    for name, value in values.items():
        if value is None or value == "":
            continue
        row = {"lead_id": lead_id, "name": name, "value": key.encrypt(f"attr/{name}", value)}
        row["updated_at"] = now
        batch.insert(session, table, row)
        rows.append(row)
    return rows
