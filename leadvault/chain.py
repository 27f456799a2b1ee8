"""Append-only hash chains: the one piece of code behind the consent ledger and the audit trail.

Each entry's hash covers its canonical fields and its predecessor's hash, so
editing, inserting or deleting any entry breaks the chain from there on. A
single head row per chain, locked by every append, holds the newest id and
hash: concurrent transactions never fork the chain, and removing the newest
entries is noticed because the head no longer matches.

An entry whose content was lawfully purged (a *tombstone*) cannot be re-hashed;
it is accepted only when a later entry, itself hashed into the chain, lists
its id (``lists``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from leadvault import bulk
from leadvault.crypto import sha256_hex

GENESIS = "0" * 64
HEAD_ID = 1


class Linked(Protocol):
    id: Any
    prev_hash: Any
    entry_hash: Any


class Head(Protocol):
    id: Any
    last_id: Any
    last_hash: Any


E = TypeVar("E", bound=Linked)


def digest(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the fields as canonical JSON (sorted keys, no spaces)."""
    return sha256_hex(_canonical_json(fields))


# ``json.dumps(fields, sort_keys=True, separators=(",", ":"))``, its encoder made once:
# ``json.dumps`` with arguments builds one per call (every ledger entry is encoded).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _canonical_json(fields: Mapping[str, Any]) -> str:
    return _CANONICAL.encode(fields)


_PREV = "prev_hash"
# The ``prev_hash`` key as the canonical JSON writes it, before its value.
_PREV_KEY = _canonical_json({_PREV: ""})[1:-3]


@dataclasses.dataclass(frozen=True, slots=True)
class Cut:
    """An entry's canonical JSON without its ``prev_hash``, cut where that key goes among
    the sorted keys (:meth:`Chain.cut`). Made before the entry is linked (a worker's
    batch: in its SQLite snapshot), linking it hashes one string: under the head's lock
    (SQLite's write lock) no JSON is encoded."""

    before: str  # '{' and the keys sorted before prev_hash, each with a comma after it
    after: str  # the keys sorted after it, each with a comma before it, and '}'

    def digest(self, prev_hash: str) -> str:
        """``digest`` of the entry's fields with ``prev_hash``: the same string hashed."""
        # ``_canonical_json({_PREV: prev_hash})[1:-1]``: the key and the value encoded.
        return sha256_hex(f"{self.before}{_PREV_KEY}{_CANONICAL.encode(prev_hash)}{self.after}")


@dataclasses.dataclass(frozen=True)
class Chain:
    """One chain: its entry model, its head model and what of an entry is hashed.

    ``canonical(entry)`` returns the hashed fields *without* ``prev_hash``; the
    chain adds it.
    """

    entry_model: type
    head_model: type
    canonical: Callable[[Any], dict[str, Any]]
    # A purged entry (not re-hashed) and the ids a later entry vouches for.
    purged: Callable[[Any], bool] = lambda _entry: False
    lists: Callable[[Any], set[int]] = lambda _entry: set()

    def hash_of(self, entry: Any) -> str:
        return digest({**self.canonical(entry), _PREV: entry.prev_hash})

    def cut(self, entry: Any) -> Cut:
        """The entry's canonical JSON to be linked later (:class:`Cut`); read its fields
        now, so none may change after."""
        fields = self.canonical(entry)
        low = {key: value for key, value in fields.items() if key < _PREV}
        high = {key: value for key, value in fields.items() if key > _PREV}
        return Cut(
            _canonical_json(low)[:-1] + ("," if low else ""),
            ("," if high else "") + _canonical_json(high)[1:],
        )

    def append(self, session: Session, entry: E) -> E:
        """Link ``entry`` after the newest one (locking the head) and flush it."""
        self.append_all(session, [entry])
        return entry

    def append_all(self, session: Session, entries: list[E]) -> None:
        """Link ``entries`` in order after the newest one, locking the head once
        (a worker's batch), and flush them."""
        head = session.scalars(
            sa.select(self.head_model)
            .where(self.head_model.id == HEAD_ID)  # type: ignore[attr-defined]
            .with_for_update()
        ).one()
        previous = head.last_hash
        for entry in entries:
            entry.prev_hash = previous
            entry.entry_hash = previous = self.hash_of(entry)
        session.add_all(entries)
        session.flush()
        head.last_id = entries[-1].id
        head.last_hash = previous
        session.flush()

    def insert_all(
        self, session: Session, entries: list[E], cuts: Sequence[Cut] | None = None
    ) -> None:
        """:meth:`append_all` for a worker's batch: the entries linked in order after the
        newest one (locking the head once) and written in one executemany; they do not
        join the session and get no id (nothing of the batch reads them back).
        ``cuts``: each entry's :meth:`cut`, made before (then no JSON under the lock)."""
        table: sa.Table = self.entry_model.__table__  # type: ignore[attr-defined]
        heads: sa.Table = self.head_model.__table__  # type: ignore[attr-defined]
        columns = [column.key for column in table.columns if not column.primary_key]
        # The head read and moved by two Core statements on the session's connection
        # (an ORM head cost a query, a SELECT of the newest id and a flush a batch).
        connection = session.connection()
        previous = connection.execute(
            sa.select(heads.c.last_hash).where(heads.c.id == HEAD_ID).with_for_update()
        ).scalar_one()
        rows = []
        for index, entry in enumerate(entries):
            entry.prev_hash = previous
            entry.entry_hash = previous = (
                cuts[index].digest(previous) if cuts is not None else self.hash_of(entry)
            )
            rows.append({name: getattr(entry, name) for name in columns})
        bulk.insert_many(connection, table, rows)
        # Every append locks the head first, so the newest entry is ours.
        newest = sa.select(sa.func.max(table.c.id)).scalar_subquery()
        connection.execute(
            sa.update(heads).where(heads.c.id == HEAD_ID).values(last_id=newest, last_hash=previous)
        )
        # A head the session loaded before (an append outside the batch) is stale now.
        loaded = session.identity_map.get(identity_key(self.head_model, HEAD_ID))
        if loaded is not None:
            session.expire(loaded)

    def entries(self, session: Session, batch: int = 1000) -> Iterator[Any]:
        """Every entry in order, a batch at a time (flat memory)."""
        model: Any = self.entry_model
        last = 0
        while True:
            rows = list(
                session.scalars(
                    sa.select(model).where(model.id > last).order_by(model.id).limit(batch)
                )
            )
            if not rows:
                return
            yield from rows
            last = rows[-1].id
            session.expunge_all()

    def verify(self, session: Session) -> Verdict:
        """Walk the chain from the start; name the first entry that does not fit."""
        previous = GENESIS
        checked = 0
        last_id = 0
        unlisted: list[int] = []
        for entry in self.entries(session):
            if entry.prev_hash != previous:
                return Verdict(
                    checked, entry.id, "does not follow its predecessor (edited or removed)"
                )
            if self.purged(entry):
                unlisted.append(entry.id)
            else:
                if self.hash_of(entry) != entry.entry_hash:
                    return Verdict(
                        checked, entry.id, "its content does not match its hash (edited)"
                    )
                listed = self.lists(entry)
                if listed:
                    unlisted = [i for i in unlisted if i not in listed]
            previous = entry.entry_hash
            last_id = entry.id
            checked += 1
        if unlisted:
            return Verdict(checked, unlisted[0], "marked as purged without a record listing it")
        head = session.get(self.head_model, HEAD_ID)
        if head is None or head.last_hash != previous or head.last_id != last_id:
            return Verdict(checked, None, "the newest entries were removed (head does not match)")
        return Verdict(checked)


@dataclasses.dataclass(frozen=True)
class Verdict:
    checked: int
    broken_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_id is None and self.reason is None

    def describe(self, name: str) -> str:
        """One line for a person: ``Audit trail intact: 12 entries verified.``"""
        if self.ok:
            return f"{name} intact: {self.checked} entries verified."
        where = f"entry {self.broken_id}" if self.broken_id is not None else "the end"
        return (
            f"{name} BROKEN at {where}: {self.reason} ({self.checked} entries before it verified)."
        )
