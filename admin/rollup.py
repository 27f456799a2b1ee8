"""The dashboard's daily aggregates: kept in the transaction of every change, read in a few
index range scans however many leads there are (``admin.rollup_reports``).

What a lead adds (its local creation day, first form, first UTM source, suspect flag,
the funnel stages it entered, sales' reject reasons, the time each funnel step took) is
stored per lead in ``report_leads`` / ``report_steps``; ``report_days`` and
``report_rejections`` hold the sums. A change of a lead takes back what it added and
adds what it adds now, so the sums stay exactly what :mod:`admin.reports` computes
from the source tables (tests/test_rollup.py compares the two).

Which leads changed is collected during the transaction and settled just before it
commits (``before_commit``), once per transaction and in bulk: a worker's batch of a
hundred submissions costs a handful of statements. On SQLite the commit holds the
database's one write lock, which capture's requests queue for (issue 13.3): the
statements are built once (``_Statements``), and a set of leads is one parameter (a
JSON array through ``json_each``; PostgreSQL an array), so no id is coerced, rendered
and bound one by one while the lock is held. Leads are marked by the signals
of the packages below (a lead created, a submission stored, a stage change, an
erasure) and by any flush that writes a scoring state or a handoff, so a new write
path is covered as long as it goes through the session.

``leadvault dashboard rebuild`` (and migration 0021) write everything afresh; the
aggregates count days in the zone they were built in (``report_state``): the
dashboard uses them only while that is the instance's zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import json
import uuid
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from admin import reports
from admin.models import ReportDay, ReportLead, ReportRejection, ReportState, ReportStep
from leadvault import batch, clock
from leadvault.db import dialect_of
from leadvault.models import Lead
from scoring.models import Handoff, HandoffStatus, LeadScore, Stage, StageChange

_LEAD_ROWS = Lead.__table__
_SCORES = LeadScore.__table__
_CHANGES = StageChange.__table__
_HANDOFFS = Handoff.__table__

_LEADS = ReportLead.__table__
_STEPS = ReportStep.__table__
_DIRTY = "rollup.dirty"  # session.info: ids of leads whose aggregates are to be settled
# session.info: (its transaction, the leads it created and did not settle yet): such a
# lead has added nothing yet, so settling it reads and deletes nothing.
_CREATED = "rollup.created"
CHUNK = 500
STEPS = tuple(str(s) for s in reports.FUNNEL[1:])  # mql, sal, sql, won
NONE = reports.NONE_LABEL
_as_int = attrgetter("int")


@dataclasses.dataclass(frozen=True)
class LeadFacts:
    """What one lead adds to the aggregates."""

    day: dt.date
    form: str
    source: str
    suspect: bool
    reached: frozenset[str]
    rejected: frozenset[str]
    steps: tuple[tuple[str, float], ...]  # (stage, seconds from the stage before)

    def day_key(self) -> tuple[dt.date, str, str]:
        return (self.day, self.form, self.source)

    def day_values(self) -> tuple[int, int, int, int]:
        return (1, int(self.suspect), int("mql" in self.reached), int("sal" in self.reached))


# --- marking and settling -------------------------------------------------------------


def mark(session: Session, lead_ids: Iterable[uuid.UUID]) -> None:
    """The aggregates of these leads are settled before the transaction commits."""
    session.info.setdefault(_DIRTY, set()).update(lead_ids)


def _created(session: Session) -> set[uuid.UUID]:
    """The leads this transaction created (``lead_created``) and has not settled."""
    transaction = session.get_transaction()
    held = session.info.get(_CREATED)
    if held is None or transaction is None or held[0]() is not transaction:
        if transaction is None:
            return set()
        held = session.info[_CREATED] = (weakref.ref(transaction), set())
    created: set[uuid.UUID] = held[1]
    return created


def settle(session: Session) -> None:
    """Bring the marked leads' aggregates up to date (``before_commit``)."""
    if session.in_nested_transaction():
        # SQLAlchemy calls the hook on releasing a savepoint too: the leads stay marked and
        # are settled, with the rest, when the transaction commits (an import or an
        # isolated worker batch has a savepoint per line: settling each cost ten statements).
        # A lead marked in a savepoint rolled back later is settled from what is there then.
        return
    # The commit flushes after this hook: flush first, so its changes are marked too.
    session.flush()
    while session.info.get(_DIRTY):
        dirty: set[uuid.UUID] = session.info.pop(_DIRTY)
        zone = _zone(session)
        if zone is None:  # never built: nothing to keep up to date
            return
        ids = sorted(dirty, key=_as_int)  # UUIDs' order, without UUID.__lt__ per comparison
        for start in range(0, len(ids), CHUNK):
            _refresh(session, ids[start : start + CHUNK], zone)


def forget(session: Session, lead_id: uuid.UUID) -> None:
    """Take back what an erased lead added (its rows go with it)."""
    dirty = session.info.get(_DIRTY)
    if dirty is not None:
        dirty.discard(lead_id)
    zone = _zone(session)
    if zone is not None:
        _apply(session, {lead_id: _stored(session, [lead_id]).get(lead_id)}, {lead_id: None})


def _zone(session: Session) -> ZoneInfo | None:
    name = session.connection().scalar(_ZONE)
    return ZoneInfo(name) if name else None


_STATE = ReportState.__table__
_ZONE = sa.select(_STATE.c.time_zone).where(_STATE.c.id == 1)


def _refresh(session: Session, ids: list[uuid.UUID], zone: ZoneInfo) -> None:
    created = _created(session)
    # A lead this transaction created has added nothing yet, and no other transaction
    # sees it (a worker's batch: every lead, mostly).
    known = [i for i in ids if i not in created]
    if known and dialect_of(session) == "postgresql":
        # One settling per lead at a time: what it added is read and changed under the lock.
        session.execute(
            sa.select(Lead.id).where(Lead.id.in_(known)).order_by(Lead.id).with_for_update()
        )
    now = _facts(session, ids, zone)  # an erased lead is missing: it adds nothing now
    before = _stored(session, known) if known else {}
    # Each lead whose facts changed takes back what it added and adds what it adds now.
    same = {i for i, facts in before.items() if now.get(i) == facts}
    after = {i: facts for i, facts in now.items() if i not in same} if same else now
    taken_back = {i: facts for i, facts in before.items() if i not in same}
    if after or taken_back:
        # Rows to replace: those of the known leads (the created ones have none).
        replaced = [i for i in {*after, *taken_back} if i not in created] if known else []
        _apply(session, taken_back, after, added=replaced)
    created.difference_update(ids)  # settled: from now on they have added their part


def _among(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[bool]:
    """``column`` is one of the leads bound as ``ids`` (:func:`_ids`): one parameter
    whatever their number, so the statement is the same for every set of leads."""
    if dialect == "sqlite":
        listed = sa.select(sa.column("value", sa.String)).select_from(
            sa.func.json_each(sa.bindparam("ids", type_=sa.String))
        )
        return column.in_(listed)
    return column == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Uuid)))


def _ids(ids: list[uuid.UUID], dialect: str) -> dict[str, Any]:
    """The parameters of a statement of :class:`_Statements` for these leads: on SQLite
    their ids as stored (32 hex digits) in one JSON array, on PostgreSQL an array."""
    if dialect == "sqlite":
        return {"ids": json.dumps([lead_id.hex for lead_id in ids])}
    return {"ids": ids}


@dataclasses.dataclass(frozen=True)
class _Statements:
    """The statements that settle a set of leads (``ids``, see :func:`_among`), built
    once per dialect: Core on the tables (the rollup loads no objects)."""

    entered: sa.Select[Any]  # the funnel stages the leads entered, and when
    rejected: sa.Select[Any]  # sales' reasons for rejecting them
    leads: sa.Select[Any]  # creation time, first form, UTM source, suspect flag
    stored_steps: sa.Select[Any]  # what they added when last settled
    stored_leads: sa.Select[Any]
    delete_steps: sa.Delete
    delete_leads: sa.Delete

    @classmethod
    @functools.cache
    def of(cls, dialect: str) -> _Statements:
        return cls(
            entered=sa.select(_CHANGES.c.lead_id, _CHANGES.c.to_stage, _CHANGES.c.at).where(
                _among(_CHANGES.c.lead_id, dialect), _CHANGES.c.to_stage.in_(STEPS)
            ),
            rejected=sa.select(_HANDOFFS.c.lead_id, _HANDOFFS.c.reject_reason).where(
                _among(_HANDOFFS.c.lead_id, dialect),
                _HANDOFFS.c.status == HandoffStatus.REJECTED.value,
                _HANDOFFS.c.reject_reason.is_not(None),
            ),
            leads=sa.select(
                _LEAD_ROWS.c.id,
                _LEAD_ROWS.c.created_at,
                _SCORES.c.first_form,
                _SCORES.c.utm_source,
                _SCORES.c.suspect,
            )
            .select_from(_LEAD_ROWS.outerjoin(_SCORES, _SCORES.c.lead_id == _LEAD_ROWS.c.id))
            .where(_among(_LEAD_ROWS.c.id, dialect)),
            stored_steps=sa.select(_STEPS.c.lead_id, _STEPS.c.stage, _STEPS.c.seconds).where(
                _among(_STEPS.c.lead_id, dialect)
            ),
            stored_leads=sa.select(
                _LEADS.c.lead_id,
                _LEADS.c.day,
                _LEADS.c.form,
                _LEADS.c.source,
                _LEADS.c.suspect,
                _LEADS.c.reached,
                _LEADS.c.rejected,
            ).where(_among(_LEADS.c.lead_id, dialect)),
            delete_steps=sa.delete(_STEPS).where(_among(_STEPS.c.lead_id, dialect)),
            delete_leads=sa.delete(_LEADS).where(_among(_LEADS.c.lead_id, dialect)),
        )


def _facts(session: Session, ids: list[uuid.UUID], zone: ZoneInfo) -> dict[uuid.UUID, LeadFacts]:
    """What the leads add now, from the source tables (erased leads are missing)."""
    dialect = dialect_of(session)
    statements, params = _Statements.of(dialect), _ids(ids, dialect)
    connection = session.connection()
    entered: dict[uuid.UUID, dict[str, dt.datetime]] = defaultdict(dict)
    for lead_id, stage, at in connection.execute(statements.entered, params):
        first = entered[lead_id].get(stage)
        entered[lead_id][stage] = at if first is None else min(first, at)
    rejected: dict[uuid.UUID, set[str]] = defaultdict(set)
    for lead_id, reason in connection.execute(statements.rejected, params):
        rejected[lead_id].add(reason)
    facts = {}
    for lead_id, created, form, source, suspect in connection.execute(statements.leads, params):
        stages = entered.get(lead_id)
        facts[lead_id] = LeadFacts(
            day=created.astimezone(zone).date(),
            form=form or NONE,
            source=source or NONE,
            suspect=bool(suspect),
            reached=frozenset(stages) if stages else _NOTHING,
            rejected=frozenset(rejected[lead_id]) if lead_id in rejected else _NOTHING,
            steps=_steps(created, stages) if stages else (),  # none before a stage entered
        )
    return facts


_NOTHING: frozenset[str] = frozenset()


def _steps(created: dt.datetime, entered: dict[str, dt.datetime]) -> tuple[tuple[str, float], ...]:
    """Each funnel step the lead took: (stage, seconds from the stage before)."""
    times = {str(Stage.NEW): created, **entered}
    return tuple(
        (after, (times[after] - times[before]).total_seconds())
        for before, after in itertools.pairwise((str(Stage.NEW), *STEPS))
        if before in times and after in times
    )


def _stored(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, LeadFacts]:
    """What the leads added when last settled."""
    dialect = dialect_of(session)
    statements, params = _Statements.of(dialect), _ids(ids, dialect)
    connection = session.connection()
    steps: dict[uuid.UUID, list[tuple[str, float]]] = defaultdict(list)
    for lead_id, stage, seconds in connection.execute(statements.stored_steps, params):
        steps[lead_id].append((stage, seconds))
    order = {stage: i for i, stage in enumerate(STEPS)}
    return {
        row.lead_id: LeadFacts(
            day=row.day,
            form=row.form,
            source=row.source,
            suspect=row.suspect,
            reached=_set(row.reached),
            rejected=_set(row.rejected),
            steps=tuple(sorted(steps.get(row.lead_id, ()), key=lambda s: order[s[0]])),
        )
        for row in connection.execute(statements.stored_leads, params)
    }


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split(",")) if text else frozenset()


def _apply(
    session: Session,
    before: dict[uuid.UUID, LeadFacts | None],
    after: dict[uuid.UUID, LeadFacts | None],
    *,
    added: list[uuid.UUID] | None = None,
) -> None:
    """Replace each lead's ``before`` by its ``after`` (None: nothing) in every table.
    ``added``: the leads that may have rows to replace (default: all)."""
    days: dict[tuple[dt.date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    rejections: Counter[tuple[dt.date, str, str]] = Counter()
    for facts, sign in [(f, -1) for f in before.values()] + [(f, 1) for f in after.values()]:
        if facts is None:
            continue
        totals = days[facts.day_key()]
        for i, value in enumerate(facts.day_values()):
            totals[i] += sign * value
        for reason in facts.rejected:
            rejections[(facts.day, facts.source, reason)] += sign
    ids = list(after) if added is None else added
    if ids:
        dialect = dialect_of(session)
        statements, params = _Statements.of(dialect), _ids(ids, dialect)
        connection = session.connection()
        connection.execute(statements.delete_steps, params)
        connection.execute(statements.delete_leads, params)
    rows = [(i, f) for i, f in after.items() if f is not None]
    if rows:
        # Core rows in one bulk write (no ORM bulk insert: a batch of new leads' hundred).
        batch.write_rows(
            session,
            _LEADS,
            [
                {
                    "lead_id": i,
                    "day": f.day,
                    "form": f.form,
                    "source": f.source,
                    "suspect": f.suspect,
                    "reached": ",".join(sorted(f.reached)),
                    "rejected": ",".join(sorted(f.rejected)),
                }
                for i, f in rows
            ],
        )
    step_rows = [
        {"lead_id": i, "stage": stage, "day": f.day, "seconds": seconds}
        for i, f in rows
        for stage, seconds in f.steps
    ]
    batch.write_rows(session, _STEPS, step_rows)
    _add(
        session,
        ReportDay,
        ["day", "form", "source"],
        [
            {"day": k[0], "form": k[1], "source": k[2], **dict(zip(_DAY_SUMS, v, strict=True))}
            for k, v in sorted(days.items())
            if any(v)
        ],
    )
    _add(
        session,
        ReportRejection,
        ["day", "source", "reason"],
        [
            {"day": k[0], "source": k[1], "reason": k[2], "leads": n}
            for k, n in sorted(rejections.items())
            if n
        ],
    )


_DAY_SUMS = ("leads", "suspect", "mql", "sal")


def _add(session: Session, model: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """Add ``rows``' numbers to the rows with the same keys, inserting the missing ones
    (one upsert; in key order, so concurrent transactions lock rows in the same order)."""
    if not rows:
        return
    sums = tuple(name for name in rows[0] if name not in keys)
    upsert = _upsert(dialect_of(session), model.__table__, tuple(keys), sums)
    session.connection().execute(upsert, rows)


@functools.cache
def _upsert(dialect: str, table: sa.Table, keys: tuple[str, ...], sums: tuple[str, ...]) -> Any:
    """:func:`_add`'s statement, built once."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return insert.on_conflict_do_update(
        index_elements=list(keys), set_={n: table.c[n] + insert.excluded[n] for n in sums}
    )


# --- building from scratch -----------------------------------------------------------------


def rebuild(
    session: Session, zone: ZoneInfo, *, progress: Callable[[int], None] | None = None
) -> int:
    """Write the aggregates afresh from every lead, their days counted in ``zone``;
    returns the number of leads. ``progress`` is told how many leads each chunk had."""
    for model in (ReportStep, ReportLead, ReportDay, ReportRejection, ReportState):
        session.execute(sa.delete(model))
    session.execute(sa.insert(ReportState).values(id=1, time_zone=zone.key, built_at=clock.now()))
    session.info.pop(_DIRTY, None)
    session.info.pop(_CREATED, None)  # every lead's rows are written below
    count = 0
    last: uuid.UUID | None = None
    while True:
        query = sa.select(Lead.id).order_by(Lead.id).limit(CHUNK)
        if last is not None:
            query = query.where(Lead.id > last)
        ids = list(session.scalars(query))
        if not ids:
            return count
        _apply(session, {}, dict(_facts(session, ids, zone)))
        count += len(ids)
        last = ids[-1]
        if progress is not None:
            progress(len(ids))


# --- wiring ------------------------------------------------------------------------------------

# A flush that writes one of these marks the lead; for a scoring state only when a
# column the aggregates read changed (a new score alone does not move them).
_STATE_COLUMNS = ("first_form", "utm_source", "suspect", "stage")


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    touched = []
    for obj in session.new:
        if isinstance(obj, LeadScore | Handoff | StageChange):
            touched.append(obj.lead_id)
    for obj in session.dirty:
        if isinstance(obj, Handoff):
            touched.append(obj.lead_id)
        elif isinstance(obj, LeadScore):
            attrs = sa.inspect(obj).attrs
            if any(attrs[name].history.has_changes() for name in _STATE_COLUMNS):
                touched.append(obj.lead_id)
    if touched:
        mark(session, touched)


def _on_lead(session: Session, *, lead_id: uuid.UUID, **_: Any) -> None:
    mark(session, [lead_id])


def _on_created(session: Session, *, lead_id: uuid.UUID, **_: Any) -> None:
    mark(session, [lead_id])
    _created(session).add(lead_id)


def _on_erasing(session: Session, *, lead_id: uuid.UUID, **_: Any) -> None:
    forget(session, lead_id)


def init_app(app: Any) -> None:
    """Connect the signals and the session events (once per process)."""
    from capture.signals import form_submitted
    from leadvault.signals import lead_created, lead_erasing
    from scoring.signals import stage_changed

    for signal in (form_submitted, stage_changed):
        signal.connect(_on_lead)
    lead_created.connect(_on_created)
    lead_erasing.connect(_on_erasing)
    for name, handler in (("before_flush", _before_flush), ("before_commit", settle)):
        if not sa.event.contains(Session, name, handler):
            sa.event.listen(Session, name, handler)
