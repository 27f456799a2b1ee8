"""Forms and submissions. The lead itself is core (``leadvault.models.Lead``)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from leadvault import clock
from leadvault.model_base import Base, UTCDateTime


class FormKind(enum.StrEnum):
    NEWSLETTER = "newsletter"
    WHITEPAPER = "whitepaper"
    CONTACT = "contact"


class Form(Base):
    __tablename__ = "forms"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(16))
    # [{"name": "first_name", "required": false}, …]; email is implied and required.
    fields: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    # Asked later, two at a time, of leads returning through our signed links.
    follow_up_fields: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # [{"purpose": "newsletter", "required": true}, …]
    purposes: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    # {"en": {"newsletter": <consent_texts.id>}, "de": {…}}: the versions shown.
    consent_texts: Mapped[dict[str, dict[str, int]]] = mapped_column(sa.JSON)
    allowed_origins: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # Shown to visitors per language: the hosted page's h1 and the text under it.
    title: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    intro: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    thank_you: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    redirect_url: Mapped[str | None] = mapped_column(sa.String(500))
    proof_of_work: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)

    def public_title(self, lang: str) -> str | None:
        """The title visitors see in ``lang``, else the other language's; None without one
        (the name is for staff only: mails and the preference center never show it)."""
        titles = self.title or {}
        return titles.get(lang) or next((title for title in titles.values() if title), None)


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    lead_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    form_id: Mapped[int] = mapped_column(sa.ForeignKey("forms.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    language: Mapped[str] = mapped_column(sa.String(8))
    # Sealed JSON under the lead's data key: page URL, referrer, utm_* and the
    # message, any of which may hold personal data.
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    # UTM source/campaign are marketing labels, not personal data; kept plain
    # (and length-capped) so the funnel report can group by them.
    utm_source: Mapped[str | None] = mapped_column(sa.String(100))
    utm_campaign: Mapped[str | None] = mapped_column(sa.String(100))
