"""Periodic work besides the SLA: paid enrichment of leads waiting for it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import leads
from scoring import enrichment, handoff
from scoring import rules as rules_module
from scoring.models import LeadScore

BATCH = 50


def enrich_pending(session: Session) -> int:
    """Run the paid steps for a batch of leads; then they may qualify."""
    if not enrichment.has_providers():
        return 0
    rules = rules_module.active(session)
    states = list(
        session.scalars(
            sa.select(LeadScore)
            .where(LeadScore.enrichment_pending.is_(True))
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    for state in states:
        lead = leads.get(session, state.lead_id)
        if lead is None:
            continue
        enrichment.run(session, lead, state, rules, paid=True)
        handoff.promote_if_qualified(
            session, state.lead_id, rules, cause_kind="rule", cause="enrichment"
        )
    return len(states)
