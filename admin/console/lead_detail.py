"""One lead as the console shows it: timeline, consent, score; personal data on request.

Everything but :func:`personal_data` is pseudonymous (ids, times, forms,
stages, rule names, numbers). :func:`personal_data` decrypts; the view calls
it only inside the audited "show" request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from admin import leads as lead_service
from capture import service as capture_service
from capture.models import Form, Submission
from consent import ledger
from consent import service as consent_service
from consent.models import Consent, ConsentText
from leadvault import i18n, locale_formats
from leadvault.i18n import N_
from leadvault.models import Lead, OutboxMessage
from scoring import journey, rule_lines, scores, stages
from scoring import rules as rules_module
from scoring.models import Event, Handoff, LeadScore, Stage, StageChange
from scoring.rule_lines import RuleLine
from scoring.rule_model import Titles, title_in

NO_VALUE = "\u2013"  # an en dash where there is nothing to say
TIMELINE_LIMIT = 200  # newest entries of each kind


@dataclasses.dataclass(frozen=True)
class Item:
    at: dt.datetime
    kind: str  # submission, event, stage, handoff, mail
    text: str  # message id with %(…)s values
    values: dict[str, Any]
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # value: message id
    titles: dict[str, Titles] = dataclasses.field(default_factory=dict)  # value: rule titles

    def shown(self) -> dict[str, Any]:
        """The values in the page's language: labels translated, titles chosen, the
        points written as the language writes numbers."""
        lang = i18n.current_language()
        found = dict(self.values)
        for name, message in self.labels.items():
            found[name] = i18n.translate(lang, message)
        for name, titles in self.titles.items():
            found[name] = title_in(titles, lang) or found[name]
        if isinstance(found.get("points"), int | float):
            found["points"] = locale_formats.format_number(found["points"], lang)
        return found


# The activity list's words for event types, mails and states (ids stay for the rest).
EVENT_LABELS = journey.EVENT_WORDS
MAIL_LABELS = {
    "optin": N_("opt-in confirmation"),
    "welcome": N_("welcome"),
    "manage": N_("link to manage the data"),
    "email_change": N_("confirmation of a new address"),
    "email_changed": N_("notice of an address change"),
    "asset": N_("download link"),
    "repermission": N_("request for consent"),
    "handoff": N_("handoff to sales"),
    "reminder": N_("reminder to sales"),
}
MAIL_STATES = {
    "pending": N_("waiting to be sent"),
    "sending": N_("being sent"),
    "sent": N_("sent"),
    "failed": N_("could not be sent"),
    "cancelled": N_("cancelled"),
}
HANDOFF_STATES = {
    "queued": N_("waiting for a salesperson"),
    "offered": N_("offered"),
    "accepted": N_("accepted"),
    "rejected": N_("rejected"),
    "expired": N_("not accepted in time"),
    "withdrawn": N_("consent withdrawn"),
}
# Why sales rejected a lead or a person moved it (the keys stored after "person: ").
REASONS = {**stages.REASON_LABELS, **lead_service.CHANGE_REASONS}
RULE_CAUSES = {"enrichment": N_("profile completed")}


def _labels(**pairs: tuple[dict[str, str], str]) -> dict[str, str]:
    return {name: table[key] for name, (table, key) in pairs.items() if key in table}


@dataclasses.dataclass(frozen=True)
class ConsentRow:
    purpose: str
    status: str
    text_version: int | None
    text_language: str | None
    requested_at: dt.datetime | None
    granted_at: dt.datetime | None
    withdrawn_at: dt.datetime | None

    def title(self) -> str:
        """The purpose's name in the page's language (its key if it has none)."""
        return consent_service.purpose_label(self.purpose, i18n.current_language())


@dataclasses.dataclass(frozen=True)
class Summary:
    id: uuid.UUID
    created_at: dt.datetime
    language: str
    stage: str
    stage_changed_at: dt.datetime | None
    grade: str
    fit_points: float
    score: float
    breakdown: list[RuleLine]  # engagement points by rule, largest first
    suspect: bool
    flags: list[str]
    checks: list[tuple[str | None, dict[str, str]]]  # the flags as people read them
    first_form: str | None
    form_name: str | None
    utm_source: str | None
    utm_campaign: str | None
    next_stages: list[str]


def summary(session: Session, lead: Lead) -> Summary:
    state = session.get(LeadScore, lead.id)
    rules = rules_module.active(session)
    explained = scores.explain(session, lead.id, rules)
    breakdown = rule_lines.lines(
        rules,
        sorted(
            ((rule, round(value, 2)) for rule, value in explained.breakdown.items()),
            key=lambda kv: -abs(kv[1]),
        ),
    )
    stage = state.stage if state else Stage.NEW.value
    form_name = None
    if state is not None and state.first_form:
        form_name = session.scalar(sa.select(Form.name).where(Form.public_id == state.first_form))
    return Summary(
        id=lead.id,
        created_at=lead.created_at,
        language=lead.language,
        stage=stage,
        stage_changed_at=state.stage_changed_at if state else None,
        grade=state.fit_grade if state else "D",
        fit_points=state.fit_points if state else 0.0,
        score=explained.score,
        breakdown=breakdown,
        suspect=bool(state and state.suspect),
        flags=list(state.flags or []) if state else [],
        checks=rule_lines.checks(state.flags or []) if state else [],
        first_form=state.first_form if state else None,
        form_name=form_name,
        utm_source=state.utm_source if state else None,
        utm_campaign=state.utm_campaign if state else None,
        next_stages=sorted(stages.ALLOWED.get(stage, frozenset())),
    )


def timeline(session: Session, lead_id: uuid.UUID) -> list[Item]:
    """Submissions, events, stage changes, handoffs and mails, newest first."""
    items: list[Item] = []
    forms = dict(list(session.execute(sa.select(Form.id, Form.name))))
    for sub in session.scalars(
        sa.select(Submission)
        .where(Submission.lead_id == lead_id)
        .order_by(Submission.created_at.desc())
        .limit(TIMELINE_LIMIT)
    ):
        items.append(
            Item(
                sub.created_at,
                "submission",
                N_("Sent the form %(form)s (source: %(source)s)"),
                {"form": forms.get(sub.form_id, "?"), "source": sub.utm_source or NO_VALUE},
            )
        )
    events = session.scalars(
        sa.select(Event)
        .where(Event.lead_id == lead_id)
        .order_by(Event.occurred_at.desc())
        .limit(TIMELINE_LIMIT)
    )
    rules = rules_module.active(session)
    for step in journey.steps(events):  # one confirmation of two purposes: one line
        kind = step[0].type
        items.append(
            Item(
                step[0].occurred_at,
                "event",
                N_("%(what)s (%(points)s points)"),
                {"what": kind, "points": round(journey.points(step), 1)},
                labels=_labels(what=(EVENT_LABELS, kind)),
                titles={"what": rule_lines.event_titles(rules, kind)},
            )
        )
    for change in session.scalars(
        sa.select(StageChange)
        .where(StageChange.lead_id == lead_id)
        .order_by(StageChange.at.desc())
        .limit(TIMELINE_LIMIT)
    ):
        items.append(_stage_item(change, rules))
    for handoff in session.scalars(
        sa.select(Handoff)
        .where(Handoff.lead_id == lead_id)
        .order_by(Handoff.offered_at.desc())
        .limit(TIMELINE_LIMIT)
    ):
        items.append(_handoff_item(handoff))
    for mail in session.scalars(
        sa.select(OutboxMessage)
        .where(OutboxMessage.lead_id == lead_id)
        .order_by(OutboxMessage.created_at.desc())
        .limit(TIMELINE_LIMIT)
    ):
        items.append(
            Item(
                mail.created_at,
                "mail",
                N_("Mail %(template)s: %(status)s"),
                {"template": mail.template, "status": mail.status},
                labels=_labels(
                    template=(MAIL_LABELS, mail.template), status=(MAIL_STATES, mail.status)
                ),
            )
        )
    return sorted(items, key=lambda item: item.at, reverse=True)


def _stage_item(change: StageChange, rules: rules_module.Rules) -> Item:
    """A stage change with its cause in words: an event as the activity list names it, a
    person's reason by its label; a person's id and a rules version stay as they are."""
    text = N_("Stage %(from)s → %(to)s (%(cause)s)")
    values: dict[str, Any] = {
        "from": change.from_stage or NO_VALUE,
        "to": change.to_stage,
        "cause": change.cause,
    }
    labels: dict[str, str] = {}
    titles: dict[str, Titles] = {}
    if change.cause_kind == "event":
        labels = _labels(cause=(EVENT_LABELS, change.cause))
        titles = {"cause": rule_lines.event_titles(rules, change.cause)}
    elif change.cause_kind == "rule":
        labels = _labels(cause=(RULE_CAUSES, change.cause))
    elif change.cause_kind == "person":
        who, _sep, reason = change.cause.rpartition(": ")
        if who and reason in REASONS:
            text = N_("Stage %(from)s → %(to)s (%(cause)s: %(reason)s)")
            values.update(cause=who, reason=reason)
            labels = {"reason": REASONS[reason]}
    return Item(change.at, "stage", text, values, labels=labels, titles=titles)


def _handoff_item(handoff: Handoff) -> Item:
    values: dict[str, Any] = {"rule": handoff.routing_rule, "status": handoff.status}
    labels = _labels(status=(HANDOFF_STATES, handoff.status))
    if not handoff.reject_reason:
        text = N_("Handed to sales (%(rule)s): %(status)s")
    else:
        text = N_("Handed to sales (%(rule)s): %(status)s, %(reason)s")
        values["reason"] = handoff.reject_reason
        labels |= _labels(reason=(REASONS, handoff.reject_reason))
    return Item(handoff.offered_at, "handoff", text, values, labels=labels)


def consent_rows(session: Session, lead_id: uuid.UUID) -> list[ConsentRow]:
    rows = session.execute(
        sa.select(Consent, ConsentText.version, ConsentText.language)
        .outerjoin(ConsentText, ConsentText.id == Consent.text_id)
        .where(Consent.lead_id == lead_id)
        .order_by(Consent.purpose)
    ).all()
    return [
        ConsentRow(
            c.purpose,
            c.status,
            version,
            language,
            c.requested_at,
            c.granted_at,
            c.withdrawn_at,
        )
        for c, version, language in rows
    ]


def proof(session: Session, lead_id: uuid.UUID) -> list[Any]:
    """The lead's consent ledger entries (the proof an authority asks for)."""
    return ledger.history(session, str(lead_id))


@dataclasses.dataclass(frozen=True)
class PersonalData:
    email: str
    attributes: dict[str, str]
    submissions: list[tuple[dt.datetime, dict[str, str]]]
    fit_rules: list[RuleLine]  # the fit rules that matched, with their points


def personal_data(session: Session, lead: Lead, revealed: lead_service.Revealed) -> PersonalData:
    """The revealed address and profile with the lead's recent submissions and the fit
    rules its profile matched: decrypted, so only inside the audited request
    (:func:`reveal`)."""
    attributes = revealed["profile"]
    subs = [
        (sub.created_at, capture_service.read_submission(session, sub))
        for sub in capture_service.submissions_of(session, lead.id)[-20:]
    ]
    from scoring import enrichment

    state = session.get(LeadScore, lead.id)
    rules = rules_module.active(session)
    _points, _grade, matched = enrichment.fit_of(
        rules, attributes, list(state.flags or []) if state else [], bool(state and state.suspect)
    )
    return PersonalData(revealed["email"], attributes, subs, rule_lines.lines(rules, matched))


def reveal(session: Session, lead: Lead, *, actor: str, ip: str | None) -> PersonalData:
    """The lead's personal data, recorded in the audit trail as one view (the same
    entry as the API's and the command line's reveal)."""
    return personal_data(session, lead, lead_service.reveal(session, lead, actor=actor, ip=ip))


class StageChangeError(ValueError):
    """A stage change the lifecycle or the form does not allow (message id)."""


def change_stage(
    session: Session, lead: Lead, to: str, reason: str, *, actor: str, ip: str | None
) -> None:
    """The API's stage change, for a reason from :data:`admin.leads.CHANGE_REASONS`; refusals as
    message ids the page translates."""
    if reason not in lead_service.CHANGE_REASONS:
        raise StageChangeError(N_("Please choose a reason."))
    try:
        lead_service.change_stage(session, lead, to, reason, actor=actor, ip=ip)
    except lead_service.LeadError:
        # The reason is one of ours, so the lifecycle refused the move.
        raise StageChangeError(N_("A lead in this stage cannot move to that stage.")) from None
