"""The lead's identity: find, create, read and erase, with field encryption."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from leadvault import addresses, batch, batch_leads, clock, i18n, inbox, signals
from leadvault.batch_leads import AnyLead, NewAttribute, NewLead
from leadvault.crypto import DataKey, WrappedKey
from leadvault.db import dialect_of, vault_of
from leadvault.models import Lead, LeadAttribute

_KEY_CACHE = "leadvault.data_keys"
_CREATED = "leadvault.created_leads"

N_ = i18n.N_
# What forms, pages and mails call a lead's attributes.
ATTRIBUTE_LABELS = {
    "email": N_("Email address"),
    "first_name": N_("First name"),
    "last_name": N_("Last name"),
    "company": N_("Company"),
    "job_title": N_("Job title"),
    "phone": N_("Phone"),
    "country": N_("Country (two letters, e.g. DE)"),
    "company_size": N_("Company size (employees)"),
    "message": N_("Message"),
    "time_zone": N_("Time zone"),
}

# Where a value is shown, not asked for (the preference center, the handoff), a label
# without the input's hint.
SHOWN_LABELS = {"country": N_("Country")}


def attribute_label(name: str, lang: str, *, shown: bool = False) -> str:
    """The label of attribute ``name`` in ``lang`` (its name if it has none); ``shown``:
    next to a value rather than on an input."""
    label = (shown and SHOWN_LABELS.get(name)) or ATTRIBUTE_LABELS.get(name)
    return i18n.translate(lang, label) if label else name


def data_key(session: Session, lead: AnyLead) -> DataKey:
    """The lead's unwrapped data key, cached for the session's lifetime."""
    cache: dict[uuid.UUID, DataKey] = session.info.setdefault(_KEY_CACHE, {})
    key = cache.get(lead.id)
    if key is None:
        wrapped = WrappedKey(lead.wrapped_key, lead.key_version)
        key = cache[lead.id] = vault_of(session).unwrap(wrapped, lead.id)
    return key


def email_index(session: Session, email: str) -> bytes:
    """``Vault.blind_index(email)``; in a worker's batch computed once per address
    (normalising an address costs more than the rest of an item's lookups)."""
    if batch.active(session) is None:
        return vault_of(session).blind_index(email)
    return _address(session, email)[1]


def _address(session: Session, email: str) -> tuple[str, bytes]:
    """The address's stored form and its blind index, from one validation (the index is
    computed over the stored form lower-cased, see ``addresses.index_form``); in a
    worker's batch once per address."""

    def load() -> tuple[str, bytes]:
        stored = addresses.stored_form(email)
        return stored, vault_of(session).blind_index_of_form(stored.lower())

    return batch.cached(session, f"leads.address\x00{email}", load)


def find_by_email(session: Session, email: str, *, for_update: bool = False) -> Lead | None:
    query = sa.select(Lead).where(Lead.email_index == vault_of(session).blind_index(email))
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def get(session: Session, lead_id: uuid.UUID, *, for_update: bool = False) -> Lead | None:
    query = sa.select(Lead).where(Lead.id == lead_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def get_many(session: Session, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, AnyLead]:
    """Leads with their attributes, one read per 500; in a worker's batch the leads it
    holds with their attributes in memory (those it created) are not read again."""
    ids = list(set(lead_ids))
    found = batch_leads.held(session, ids)
    if found:
        ids = [lead_id for lead_id in ids if lead_id not in found]
    for start in range(0, len(ids), 500):
        query = (
            sa.select(Lead)
            .where(Lead.id.in_(ids[start : start + 500]))
            .options(selectinload(Lead.attributes))
        )
        found.update((lead.id, lead) for lead in session.scalars(query))
    return found


def get_or_create(session: Session, email: str, *, language: str) -> tuple[AnyLead, bool]:
    """Return the lead for ``email``, creating it; safe against concurrent requests.

    The insert skips on conflict with the blind index, so of many concurrent
    submissions of one new address exactly one creates the lead; the row is
    then locked so the caller's decisions about it are serialised. In a worker's
    batch a new lead is a ``batch_leads.NewLead`` (its row queued); an existing one, or
    one an earlier item created, a Lead.
    """
    vault = vault_of(session)
    stored, index = _address(session, email)
    known = _batch_leads(session, index)
    if known is not None and index in known:
        # Read at the batch's start (locked on PostgreSQL), or made by an earlier item.
        found = known[index]
        lead = known[index] = (
            batch_leads.stored_lead(session, found) if isinstance(found, NewLead) else found
        )
        session.info.get(_CREATED, set()).discard(lead.id)
        return lead, False
    lead_id = uuid.uuid4()
    key, wrapped = vault.new_data_key(lead_id)
    now = clock.now()
    values = {
        "id": lead_id,
        "email_index": index,
        "email": key.encrypt("email", stored),
        "wrapped_key": wrapped.wrapped,
        "key_version": wrapped.version,
        "language": language,
        "created_at": now,
        "last_activity_at": now,
    }
    statement = _INSERT_UNLESS_KNOWN[dialect_of(session)]
    if known is not None and batch.insert_first(session, statement, values):
        # In a worker's batch, with the batch's other new leads in one statement before
        # anything refers to them; should another transaction have created this address
        # meanwhile, the batch is done again item by item (batch.Conflict).
        new = known[index] = NewLead(**values)
        _created_here(session, new, key)
        signals.lead_created.send(session, lead_id=lead_id)
        return new, True
    # Inserted at once, by a prepared Core statement (no ORM flush): the rows that
    # refer to it may be flushed in any order.
    result = session.connection().execute(statement, values)
    # Without preserve_rowcount, SQLAlchemy 2.1 reports -1 for an INSERT on psycopg.
    if result.rowcount != 1:
        query = sa.select(Lead).where(Lead.email_index == index).with_for_update()
        lead = session.scalars(query).one()
        # Created earlier in this session (a batch) it may have rows by now.
        session.info.get(_CREATED, set()).discard(lead.id)
        return lead, False
    # Ours: the new row is locked by our transaction already, and we know every value.
    lead = Lead(**values)
    make_transient_to_detached(lead)
    set_committed_value(lead, "attributes", [])
    session.add(lead)
    _created_here(session, lead, key)
    signals.lead_created.send(session, lead_id=lead_id)
    return lead, True


# A new lead unless its address is known (of many concurrent submissions one wins).
_INSERT_UNLESS_KNOWN = {
    name: insert(Lead.__table__)
    .on_conflict_do_nothing(index_elements=["email_index"])
    .execution_options(preserve_rowcount=True)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def _created_here(session: Session, lead: AnyLead, key: DataKey) -> None:
    session.info.setdefault(_KEY_CACHE, {})[lead.id] = key
    session.info.setdefault(_CREATED, set()).add(lead.id)


def _batch_leads(session: Session, index: bytes) -> dict[bytes, AnyLead] | None:
    """In a worker's batch, the leads of its addresses by blind index: read in one
    statement (locked on PostgreSQL, as ``get_or_create`` locks one), then kept with
    the leads its items create. None outside a batch or for an address it does not
    list."""
    work = batch.active(session)
    if work is None or index not in work.subjects:
        return None

    def load() -> dict[bytes, AnyLead]:
        query = sa.select(Lead).where(Lead.email_index.in_(list(work.subjects)))
        if dialect_of(session) == "postgresql":
            query = query.with_for_update()
        return {lead.email_index: lead for lead in session.scalars(query)}

    found: dict[bytes, AnyLead] = batch.cached(session, batch_leads.KNOWN, load)
    return found


def created_here(session: Session, lead_id: uuid.UUID) -> bool:
    """Whether the lead was created in this session by its latest ``get_or_create`` (no
    other rows of it can exist yet: a second call for its address clears this)."""
    return lead_id in session.info.get(_CREATED, ())


def email_of(session: Session, lead: AnyLead) -> str:
    return data_key(session, lead).decrypt("email", lead.email)


def set_attributes(session: Session, lead: AnyLead, values: Mapping[str, str | None]) -> list[str]:
    """Store profile fields encrypted; empty values leave what is known untouched.
    Returns the names whose value changed."""
    if not any(values.values()):
        return []  # nothing to store: no statement
    key = data_key(session, lead)
    now = clock.now()
    if isinstance(lead, NewLead):
        return _set_new_attributes(session, lead, key, values, now)
    existing = {attr.name: attr for attr in lead.attributes}
    if not existing and batch.insertable(session):
        return _insert_attributes(session, lead, key, values, now)
    changed: list[str] = []
    for name, value in values.items():
        if value is None or value == "":
            continue
        current = existing.get(name)
        if current is not None and key.decrypt(f"attr/{name}", current.value) == value:
            continue
        sealed = key.encrypt(f"attr/{name}", value)
        if current is not None:
            current.value = sealed
            current.updated_at = now
        else:
            lead.attributes.append(LeadAttribute(name=name, value=sealed, updated_at=now))
        changed.append(name)
    if batch.active(session) is None:
        session.flush()  # in a worker's batch its end flushes every item's rows at once
    if changed:
        signals.lead_updated.send(session, lead_id=lead.id, fields=changed)
    return changed


def _insert_attributes(
    session: Session, lead: Lead, key: DataKey, values: Mapping[str, str | None], now: dt.datetime
) -> list[str]:
    """:func:`set_attributes` of a stored lead without any in a worker's batch: the rows
    are written with the batch's others (one executemany); the objects join the session
    as stored (a later change of one is an UPDATE) without going through its flush."""
    stored: list[LeadAttribute] = []
    for row in batch_leads.queue_attributes(session, lead.id, key, values, now):
        attribute = LeadAttribute(**row)
        make_transient_to_detached(attribute)
        session.add(attribute)
        stored.append(attribute)
    set_committed_value(lead, "attributes", stored)
    changed = [attribute.name for attribute in stored]
    if changed:
        signals.lead_updated.send(session, lead_id=lead.id, fields=changed)
    return changed


def _set_new_attributes(
    session: Session,
    lead: NewLead,
    key: DataKey,
    values: Mapping[str, str | None],
    now: dt.datetime,
) -> list[str]:
    """:func:`set_attributes` of a lead the batch created: new names are rows queued with
    the batch's others. A changed one (nothing in a batch changes a new lead's attribute
    but a later item of its address, which gets the stored Lead) goes through the stored
    Lead, and the NewLead takes what it then holds."""
    held = {attribute.name for attribute in lead.attributes}
    if any(value and name in held for name, value in values.items()):
        stored = batch_leads.stored_lead(session, lead)
        changed = set_attributes(session, stored, values)
        lead.attributes = [NewAttribute(a.name, a.value, a.updated_at) for a in stored.attributes]
        return changed
    rows = batch_leads.queue_attributes(session, lead.id, key, values, now)
    lead.attributes.extend(NewAttribute(row["name"], row["value"], now) for row in rows)
    changed = [row["name"] for row in rows]
    if changed:
        signals.lead_updated.send(session, lead_id=lead.id, fields=changed)
    return changed


def correct_attributes(session: Session, lead: Lead, values: Mapping[str, str | None]) -> list[str]:
    """The person's own correction (Art. 16): like :func:`set_attributes`, but an empty
    value removes the field. Returns the names that changed or went."""
    removed = [
        attr.name for attr in lead.attributes if attr.name in values and not values[attr.name]
    ]
    for attr in [attr for attr in lead.attributes if attr.name in removed]:
        lead.attributes.remove(attr)
    if removed:
        session.flush()
        signals.lead_updated.send(session, lead_id=lead.id, fields=removed)
    return removed + set_attributes(session, lead, values)


class AddressTaken(Exception):
    """Another lead already has this address."""


def change_email(session: Session, lead: Lead, email: str) -> None:
    """Give the lead a new address (sealed) and blind index, once its owner confirmed it.

    Raises :class:`AddressTaken` when another lead holds the address: leads are one
    per address, and merging two people's records is not the person's call.
    """
    index = vault_of(session).blind_index(email)
    if index == lead.email_index:
        return
    taken = session.scalar(sa.select(Lead.id).where(Lead.email_index == index))
    if taken is not None:
        raise AddressTaken("address taken")
    sealed = data_key(session, lead).encrypt("email", addresses.stored_form(email))
    try:
        with session.begin_nested():  # a lead taking the address this moment: no 500
            lead.email, lead.email_index = sealed, index
            session.flush()
    except sa.exc.IntegrityError:
        raise AddressTaken("address taken") from None
    signals.lead_updated.send(session, lead_id=lead.id, fields=["email"])


def known_zone(name: str | None) -> bool:
    """Whether ``name`` is a time zone of the IANA database ("Europe/Berlin")."""
    if not name or len(name) > 64 or name.startswith("/") or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    # OSError: a folder of the zone database ("Europe") is no zone and cannot be read.
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def zone_of(session: Session, lead: Lead, default: dt.tzinfo) -> dt.tzinfo:
    """The lead's time zone (from its browser, when a widget sent it), else ``default``."""
    return zone_in(attributes_of(session, lead), default)


def zone_in(attributes: Mapping[str, str], default: dt.tzinfo) -> dt.tzinfo:
    """``zone_of`` for attributes already unsealed."""
    name = attributes.get("time_zone")
    return zoneinfo.ZoneInfo(name) if name and known_zone(name) else default


def attributes_of(session: Session, lead: AnyLead) -> dict[str, str]:
    key = data_key(session, lead)
    return {attr.name: key.decrypt(f"attr/{attr.name}", attr.value) for attr in lead.attributes}


def touch(lead: Lead) -> None:
    lead.last_activity_at = clock.now()


def erase(
    session: Session,
    lead: Lead,
    *,
    actor: str = "system",
    reason: str = "retention",
    ip: str | None = None,
) -> None:
    """Crypto-shred and delete the lead; packages delete their rows on the signal.

    One audit entry says who erased it and why (``actor``: ``user:7``,
    ``cli:root``, ``subject`` for the lead itself, ``system`` for retention).
    """
    from leadvault import audit

    audit.record_lead(
        session,
        lead.id,
        audit.Action.LEAD_ERASED,
        actor=actor,
        detail={"reason": reason},
        ip=ip,
    )
    signals.lead_erasing.send(session, lead_id=lead.id)
    inbox.drop_for_subject(session, lead.email_index)
    cache: dict[uuid.UUID, DataKey] = session.info.get(_KEY_CACHE, {})
    cache.pop(lead.id, None)
    session.delete(lead)
    session.flush()
    checkpoint_after_commit(session)


def checkpoint_after_commit(session: Session) -> None:
    """Ask for a WAL checkpoint after commit, so erased pages leave the SQLite WAL file."""
    session.info["wal_checkpoint"] = True
