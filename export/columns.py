"""The columns an export may hold, and how a column list is written down.

A column list is a comma-separated string of keys: lead fields (``email``,
``first_name`` …), scoring (``stage``, ``grade``, ``score`` …), source
(``form``, ``utm_source`` …) and consent per purpose (``consent.newsletter``
for the state, ``consent.newsletter.date`` and ``consent.newsletter.version``
for when and under which text version). ``consent`` alone stands for all three
of every purpose.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence

from sqlalchemy.orm import Session

from capture.definitions import PROFILE_FIELDS
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest


class Kind(enum.StrEnum):
    TEXT = "text"  # may hold anything a visitor typed: neutralised against formulas
    LABEL = "label"  # our own vocabulary (stages, purposes, ids)
    NUMBER = "number"
    DATETIME = "datetime"
    BOOL = "bool"


class Source(enum.StrEnum):
    LEAD = "lead"  # the leads row
    EMAIL = "email"  # sealed address
    ATTRIBUTE = "attribute"  # sealed profile field
    SCORE = "score"  # lead_scores
    SUBMISSION = "submission"  # the first submission's sealed source data
    CONSENT = "consent"


@dataclasses.dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: Kind
    source: Source
    # The attribute / score column / source key / purpose this column reads.
    field: str
    # For consent columns: "status", "date" or "version".
    part: str = ""

    @property
    def personal(self) -> bool:
        return self.source in {Source.EMAIL, Source.ATTRIBUTE, Source.SUBMISSION}


_FIXED: tuple[Column, ...] = (
    Column("id", "Lead ID", Kind.LABEL, Source.LEAD, "id"),
    Column("email", "Email", Kind.TEXT, Source.EMAIL, "email"),
    *(
        Column(name, name.replace("_", " ").capitalize(), Kind.TEXT, Source.ATTRIBUTE, name)
        for name in PROFILE_FIELDS
    ),
    Column("language", "Language", Kind.LABEL, Source.LEAD, "language"),
    Column("created_at", "Created", Kind.DATETIME, Source.LEAD, "created_at"),
    Column("last_activity_at", "Last activity", Kind.DATETIME, Source.LEAD, "last_activity_at"),
    Column("stage", "Stage", Kind.LABEL, Source.SCORE, "stage"),
    Column("stage_changed_at", "Stage since", Kind.DATETIME, Source.SCORE, "stage_changed_at"),
    Column("grade", "Grade", Kind.LABEL, Source.SCORE, "fit_grade"),
    Column("score", "Score", Kind.NUMBER, Source.SCORE, "score"),
    Column("fit_points", "Fit points", Kind.NUMBER, Source.SCORE, "fit_points"),
    Column("suspect", "Suspect", Kind.BOOL, Source.SCORE, "suspect"),
    Column("form", "Form", Kind.LABEL, Source.SCORE, "first_form"),
    Column("utm_source", "UTM source", Kind.TEXT, Source.SCORE, "utm_source"),
    Column("utm_campaign", "UTM campaign", Kind.TEXT, Source.SCORE, "utm_campaign"),
    Column("utm_medium", "UTM medium", Kind.TEXT, Source.SUBMISSION, "utm_medium"),
    Column("utm_term", "UTM term", Kind.TEXT, Source.SUBMISSION, "utm_term"),
    Column("utm_content", "UTM content", Kind.TEXT, Source.SUBMISSION, "utm_content"),
    Column("referrer", "Referrer", Kind.TEXT, Source.SUBMISSION, "referrer"),
    Column("page_url", "Page", Kind.TEXT, Source.SUBMISSION, "page_url"),
)
FIXED = {column.key: column for column in _FIXED}
DEFAULT = (
    "id",
    "email",
    "first_name",
    "last_name",
    "company",
    "stage",
    "grade",
    "score",
    "form",
    "utm_source",
    "utm_campaign",
    "created_at",
    "consent",
)
_PARTS = {"": "status", "date": "date", "version": "version"}


class ColumnError(RefusedRequest):
    """An unknown column key; the message names it and the known ones."""


def consent_columns(purpose: str) -> list[Column]:
    return [
        Column(f"consent.{purpose}", f"Consent {purpose}", Kind.LABEL, Source.CONSENT, purpose),
        Column(
            f"consent.{purpose}.date",
            f"Consent {purpose} date",
            Kind.DATETIME,
            Source.CONSENT,
            purpose,
            "date",
        ),
        Column(
            f"consent.{purpose}.version",
            f"Consent {purpose} text version",
            Kind.NUMBER,
            Source.CONSENT,
            purpose,
            "version",
        ),
    ]


def purpose_keys(session: Session) -> list[str]:
    from consent import service as consent_service

    return sorted(consent_service.purpose_keys(session))


def parse(session: Session, spec: str | Sequence[str] | None) -> list[Column]:
    """Columns from ``"email,stage,consent.newsletter"`` (None: the default set)."""
    keys = spec.split(",") if isinstance(spec, str) else list(spec or DEFAULT)
    purposes = purpose_keys(session)
    chosen: list[Column] = []
    for raw in keys:
        key = raw.strip()
        if not key:
            continue
        if key in FIXED:
            chosen.append(FIXED[key])
        elif key == "consent":
            for purpose in purposes:
                chosen.extend(consent_columns(purpose))
        elif key.startswith("consent."):
            purpose, _, part = key.removeprefix("consent.").partition(".")
            if purpose not in purposes or part not in _PARTS:
                raise ColumnError(
                    N_(
                        "unknown column '%(key)s'; consent columns are "
                        "consent.PURPOSE[.date|.version] for %(purposes)s"
                    ),
                    key=key,
                    purposes=", ".join(purposes),
                )
            chosen.append(consent_columns(purpose)[list(_PARTS).index(part)])
        else:
            raise ColumnError(
                N_("unknown column '%(key)s'; known: %(known)s"),
                key=key,
                known=", ".join(known(purposes)),
            )
    if not chosen:
        raise ColumnError(N_("no columns chosen"))
    return list({column.key: column for column in chosen}.values())


def known(purposes: Iterable[str]) -> list[str]:
    return [*FIXED, "consent", *(f"consent.{p}" for p in purposes)]
