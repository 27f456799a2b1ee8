"""Gated assets (whitepapers) and which form hands out which asset."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from leadvault import clock
from leadvault.model_base import Base, UTCDateTime


class Asset(Base):
    """A file in the instance folder (an S3-compatible store can come later: ``storage``)."""

    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    # The title in the default language; ``titles`` holds the other languages' own.
    title: Mapped[str] = mapped_column(sa.String(200))
    titles: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    descriptions: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    filename: Mapped[str] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    storage: Mapped[str] = mapped_column(sa.String(16), default="instance")
    path: Mapped[str] = mapped_column(sa.String(500))  # relative to the assets folder
    download_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=clock.now)
    # Archived assets are kept (mailed links stay valid) but offered to no new form.
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    def title_in(self, lang: str) -> str:
        """The title in ``lang``, else the default one."""
        return (self.titles or {}).get(lang) or self.title

    def description_in(self, lang: str) -> str:
        return (self.descriptions or {}).get(lang, "")

    def as_texts(self) -> dict[str, Any]:
        return {"titles": dict(self.titles or {}), "descriptions": dict(self.descriptions or {})}


class FormAsset(Base):
    """The asset a whitepaper form delivers after double opt-in."""

    __tablename__ = "form_assets"

    form_id: Mapped[int] = mapped_column(
        sa.ForeignKey("forms.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        sa.ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
