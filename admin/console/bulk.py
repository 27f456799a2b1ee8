"""Bulk actions on the console's lead list: the leads chosen by their checkboxes get a
new stage (with a reason from the list) or are erased, one by one through the same
services as a single lead (so each is audited on its own).

The selection comes from a plain form (works without JavaScript): the ids of at most
one page of the list. Leads the account may not see are left out, as if absent.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from admin import leads as lead_service
from admin.console import lead_detail
from leadvault.i18n import N_
from leadvault.models import Lead

MAX_SELECTED = 100  # one page of the list at most (the largest page the service gives)


class BulkError(ValueError):
    """A selection or action that cannot be done; the message id says why."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    lead_id: uuid.UUID
    done: bool
    message: str | None = None  # message id when not done

    @property
    def reference(self) -> str:
        return self.lead_id.hex[:8]


def chosen_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """The lead ids of the form's checkboxes, each once, in the order given."""
    if not values:
        raise BulkError(N_("Choose at least one lead in the list."))
    if len(values) > MAX_SELECTED:
        raise BulkError(N_("Choose at most 100 leads at a time."))
    found: dict[uuid.UUID, None] = {}
    for value in values:
        # Only the form the checkboxes carry (str of a UUID): uuid.UUID would also take
        # braces, "urn:uuid:" and misplaced hyphens; the length check comes first so a
        # huge value is never parsed.
        lead_id = _lead_id(value) if len(value) == 36 else None
        if lead_id is None or str(lead_id) != value.lower():
            raise BulkError(N_("The request could not be understood."))
        found[lead_id] = None
    return list(found)


def _lead_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def visible_leads(
    session: Session, ids: Sequence[uuid.UUID], *, assigned_to: int | None
) -> list[Lead]:
    """The chosen leads this account may act on (erased or foreign ones drop out)."""
    leads = [lead_service.get(session, lead_id, assigned_to=assigned_to) for lead_id in ids]
    found = [lead for lead in leads if lead is not None]
    if not found:
        raise BulkError(N_("None of the chosen leads is there any more."))
    return found


def change_stages(
    session: Session, leads: Sequence[Lead], to: str, reason: str, *, actor: str, ip: str | None
) -> list[Outcome]:
    """Move each lead that may move to ``to``; a lead that may not keeps its stage and
    says why. Each change is one stage change and one audit entry, as on the lead page."""
    if reason not in lead_service.CHANGE_REASONS:
        raise BulkError(N_("Please choose a reason."))
    if to not in lead_service.STAGES:
        raise BulkError(N_("There is no such stage."))
    outcomes = []
    for lead in leads:
        # A savepoint per lead: a refused change leaves nothing half-done behind.
        nested = session.begin_nested()
        try:
            lead_detail.change_stage(session, lead, to, reason, actor=actor, ip=ip)
        except lead_detail.StageChangeError as exc:
            nested.rollback()
            outcomes.append(Outcome(lead.id, False, str(exc)))
            continue
        nested.commit()
        outcomes.append(Outcome(lead.id, True))
    return outcomes


def erase(session: Session, leads: Sequence[Lead], *, actor: str, ip: str | None) -> list[Outcome]:
    """Erase each lead (crypto-shredded; the erasure records its own audit entry)."""
    outcomes = []
    for lead in leads:
        lead_id = lead.id
        lead_service.erase(session, lead, actor=actor, ip=ip)
        outcomes.append(Outcome(lead_id, True))
    return outcomes
