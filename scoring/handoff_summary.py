"""What a salesperson reads about a handed-off lead, in the mail and on the handoff
page: the summary (contact data, score by rule, fit, journey, the sales-contact consent
and its text, the BANT answers), which of its fields a look reveals, and to whom.

``scoring.handoff`` mails it, ``scoring.views`` shows it; either records the look.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture import service as capture_service
from consent import service as consent_service
from leadvault import leads
from leadvault.i18n import N_
from leadvault.models import Lead
from scoring import enrichment, journey, rule_lines, scores, stages
from scoring.handoff_verdict import SALES_PURPOSE, bant_answer
from scoring.models import Event, Handoff, HandoffStatus, LeadScore
from scoring.rule_model import Rules, Titles


def summary(session: Session, handoff: Handoff, rules: Rules) -> dict[str, Any]:
    """Everything a salesperson needs to act on the lead (for the mail and the page)."""
    lead = session.get(Lead, handoff.lead_id)
    state = session.get(LeadScore, handoff.lead_id)
    if lead is None or state is None:
        return {}
    attributes = leads.attributes_of(session, lead)
    explanation = scores.explain(session, lead.id, rules)
    _points, _grade, fit_rules = enrichment.fit_of(rules, attributes, state.flags, state.suspect)
    form = capture_service.get_form(session, state.first_form) if state.first_form else None
    consent_state = consent_service.states(session, lead.id).get(SALES_PURPOSE)
    text = (
        consent_service.text_by_id(session, consent_state.text_id)
        if consent_state is not None and consent_state.text_id
        else None
    )
    key_events = session.execute(
        sa.select(Event.id, Event.type, Event.occurred_at, Event.awards, Event.properties)
        .where(Event.lead_id == lead.id)
        .order_by(Event.occurred_at.desc())
        .limit(12)
    ).all()
    key = leads.data_key(session, lead)
    return {
        "email": leads.email_of(session, lead),
        "name": " ".join(
            part for part in (attributes.get("first_name"), attributes.get("last_name")) if part
        ),
        "attributes": attributes,
        "score": round(explanation.score, 1),
        # Each rule by its title in the reader's language, with its points.
        "breakdown": rule_lines.lines(
            rules,
            sorted(
                ((rule, round(value, 1)) for rule, value in explanation.breakdown.items()),
                key=lambda item: -abs(item[1]),
            ),
        ),
        "fit_grade": state.fit_grade,
        "fit_rules": rule_lines.lines(rules, fit_rules),
        "flags": state.flags,
        "checks": rule_lines.checks(state.flags or ()),
        "stage": state.stage,
        "form": form.name if form else state.first_form,
        "utm_source": state.utm_source,
        "utm_campaign": state.utm_campaign,
        "events": [
            _journey_step(
                step[0],
                key.decrypt_json(f"event/{step[0].id}", step[0].properties)
                if step[0].properties
                else {},
                journey.points(step),
                rule_lines.event_titles(rules, step[0].type),
            )
            for step in journey.steps(key_events)
        ],
        "consent_granted_at": consent_state.granted_at if consent_state else None,
        "consent_text": text.text if text else None,
        "consent_version": text.version if text else None,
        "bant": {point: bant_answer(handoff.bant or {}, point) for point in stages.BANT},
    }


# The handoffs whose page shows the lead's contact data (to the person it is offered to).
OPEN_TO_PERSON = (HandoffStatus.OFFERED, HandoffStatus.ACCEPTED)


def fields_shown(lead: Mapping[str, Any]) -> list[str]:
    """The decrypted fields a :func:`summary` holds (for the audit entry of a look)."""
    return ["email", *lead["attributes"], *(["journey"] if lead["events"] else [])]


# A journey step as a salesperson reads it (event types without a line show their name).
JOURNEY = {
    **journey.EVENT_WORDS,
    "page_view:category": N_("Viewed a page: %(category)s"),
    "asset_downloaded": N_("Downloaded “%(title)s”"),
}


def _journey_step(
    row: Any, properties: dict[str, Any], points: float, titles: Titles
) -> dict[str, Any]:
    category = str(properties.get("category") or "")
    kind = f"{row.type}:category" if row.type == "page_view" and category else row.type
    return {
        "type": row.type,
        "label": JOURNEY.get(kind),
        # Without a line of its own: the title of the rule that scores it, else its type.
        "named": rule_lines.RuleLine(row.type, points, titles, retired=False, share=0.0),
        "category": category,
        "title": str(properties.get("title") or ""),
        "at": row.occurred_at,
        "date": row.occurred_at.date().isoformat(),
        "points": round(points, 1),
    }
