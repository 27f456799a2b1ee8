"""Stored sequence versions: load a file as a new version, list, disable, read back.

Every load of a key stores a new version and makes it the active one; older
versions stay (leads may still be on them, and for the record). A disabled
sequence has no active version: nobody enters, and running leads leave at
their next step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import service as consent_service
from leadvault import batch, clock
from leadvault.crypto import sha256_hex
from nurture import parser
from nurture.definition import Sequence
from nurture.models import SequenceVersion

_cache: dict[tuple[str, int, str], Sequence] = {}


class SequenceNotFound(Exception):
    """No stored sequence (or version) by that key."""


def marketing_purposes(session: Session) -> dict[str, bool]:
    """Purpose -> whether it is a marketing purpose (mails under it carry unsubscribe)."""
    return {purpose.key: purpose.marketing for purpose in consent_service.purposes(session)}


def validate(
    session: Session, text: str, *, source: str, files: Mapping[str, str] | None = None
) -> Sequence:
    """Parse and check against this instance (purposes); raises SequenceError."""
    return parser.parse(
        text, source=source, files=files, known_purposes=marketing_purposes(session)
    )


def load(
    session: Session, text: str, *, source: str, files: Mapping[str, str] | None = None
) -> SequenceVersion:
    """Validate and store as the new active version of its key."""
    parsed = validate(session, text, source=source, files=files)
    latest = session.scalar(
        sa.select(sa.func.max(SequenceVersion.version)).where(SequenceVersion.key == parsed.key)
    )
    version = (latest or 0) + 1
    session.execute(
        sa.update(SequenceVersion)
        .where(SequenceVersion.key == parsed.key, SequenceVersion.active.is_(True))
        .values(active=False)
    )
    stored_files = dict(files or {})
    row = SequenceVersion(
        key=parsed.key,
        version=version,
        name=parsed.name,
        purpose=parsed.purpose,
        trigger=parsed.trigger.on,
        source=source[-255:],
        raw_text=text,
        files={
            name: stored_files[name] for name in parser.file_names(text) if name in stored_files
        },
        sha256=sha256_hex(text + "".join(f"\0{k}\0{v}" for k, v in sorted(stored_files.items()))),
        loaded_at=clock.now(),
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def disable(session: Session, key: str) -> int:
    """No version of ``key`` stays active; returns how many rows changed (0: not active)."""
    if session.scalar(sa.select(SequenceVersion.id).where(SequenceVersion.key == key)) is None:
        raise SequenceNotFound(key)
    return session.execute(
        sa.update(SequenceVersion)
        .where(SequenceVersion.key == key, SequenceVersion.active.is_(True))
        .values(active=False)
    ).rowcount


def _parsed(row: SequenceVersion) -> Sequence:
    cache_key = (row.key, row.version, row.sha256)
    found = _cache.get(cache_key)
    if found is None:
        found = _cache[cache_key] = parser.parse(
            row.raw_text,
            source=f"{row.key} v{row.version}",
            version=row.version,
            files=row.files or {},
            stored=True,
        )
    return found


def definition(session: Session, key: str, version: int) -> Sequence:
    """A stored version, parsed once per process."""
    row = session.scalars(
        sa.select(SequenceVersion).where(
            SequenceVersion.key == key, SequenceVersion.version == version
        )
    ).one_or_none()
    if row is None:
        raise SequenceNotFound(f"{key} v{version}")
    return _parsed(row)


@dataclasses.dataclass
class ActiveSet:
    """The active sequences, read once per transaction that needs them."""

    sequences: list[Sequence]

    def by_key(self, key: str) -> Sequence | None:
        return next((s for s in self.sequences if s.key == key), None)

    @property
    def event_types(self) -> frozenset[str]:
        types: set[str] = set()
        for sequence in self.sequences:
            types |= sequence.event_types
        return frozenset(types)


def active(session: Session) -> ActiveSet:
    """The active sequences; read once per worker batch (``leadvault.batch``)."""

    def load() -> ActiveSet:
        rows = session.scalars(
            sa.select(SequenceVersion)
            .where(SequenceVersion.active.is_(True))
            .order_by(SequenceVersion.key)
        )
        return ActiveSet([_parsed(row) for row in rows])

    return batch.cached(session, "nurture.sequences", load)


def versions(session: Session, key: str | None = None) -> list[SequenceVersion]:
    query = sa.select(SequenceVersion).order_by(SequenceVersion.key, SequenceVersion.version)
    if key is not None:
        query = query.where(SequenceVersion.key == key)
    return list(session.scalars(query))


def row(session: Session, key: str, version: int | None = None) -> SequenceVersion:
    """The active version of ``key`` (else its newest), or the given version."""
    query = sa.select(SequenceVersion).where(SequenceVersion.key == key)
    if version is not None:
        query = query.where(SequenceVersion.version == version)
    else:
        query = query.order_by(SequenceVersion.active.desc(), SequenceVersion.version.desc())
    found = session.scalars(query.limit(1)).first()
    if found is None:
        raise SequenceNotFound(key if version is None else f"{key} v{version}")
    return found


def parsed(row_: SequenceVersion) -> Sequence:
    return _parsed(row_)
