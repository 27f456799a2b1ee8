"""Gated assets, their download links and mails, snippets, progressive profiling."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture import service as capture_service
from capture.models import Form, FormKind
from consent import service as consent_service
from leadvault import branding, clock, i18n, leads, outbox, signals
from leadvault.branding import mail_parts
from leadvault.crypto import TokenExpired, TokenInvalid, payload_id
from leadvault.db import mail_context, settings_of, vault_of
from leadvault.mail import MailContent
from leadvault.models import Lead
from widgets import assets
from widgets.assets import AssetError
from widgets.models import Asset, FormAsset

DOWNLOAD_TOKEN = "download"
PROFILE_TOKEN = "profile"
STATIC = Path(__file__).parent / "static"
LOADER_FILES = ("widget.js", "widget.css")
MAX_FOLLOW_UP = 2


@functools.cache
def loader_version() -> str:
    """A hash of the loader files: a new release gets a new URL, so caches may keep it forever."""
    digest = hashlib.sha256()
    for name in LOADER_FILES:
        digest.update((STATIC / name).read_bytes())
    return digest.hexdigest()[:12]


def loader_url(base_url: str) -> str:
    return f"{base_url}/widgets/{loader_version()}/widget.js"


def snippets(session: Session, form: Form) -> list[tuple[str, str]]:
    """The JavaScript loader and the no-JavaScript HTML form (the iframe is capture's)."""
    base = settings_of(session).base_url
    script = (
        f'<script src="{loader_url(base)}" data-leadvault-form="{form.public_id}" async></script>'
    )
    lang = "en"
    lines = [
        f'<form method="post" action="{base}/f/{form.public_id}" accept-charset="utf-8">',
        f'  <input type="hidden" name="lang" value="{lang}">',
        '  <label>Email address <input type="email" name="email" required></label>',
    ]
    for spec in form.fields:
        label = leads.attribute_label(spec["name"], lang)
        required = " required" if spec["required"] else ""
        lines.append(f'  <label>{label} <input name="{spec["name"]}"{required}></label>')
    for shown in capture_service.consent_texts_for(session, form, lang):
        lines.append(
            f'  <label><input type="checkbox" name="consent" value="{shown["purpose"]}"> '
            f"{shown['text'].text}</label>"
        )
    lines += [
        '  <div hidden aria-hidden="true">'
        '<input name="website" tabindex="-1" autocomplete="off"></div>',
        '  <button type="submit">Submit</button>',
        "</form>",
    ]
    return [("javascript", script), ("html (works without JavaScript)", "\n".join(lines))]


def _on_form_snippets(session: Session, *, form: Form, **_: Any) -> list[tuple[str, str]]:
    return snippets(session, form)


# --- assets --------------------------------------------------------------------


def add_asset(session: Session, source: Path, *, title: str) -> Asset:
    """Store a file from disk with one title (``leadvault assets add``)."""
    return assets.store_file(
        session, source, texts=assets.AssetTexts(titles={i18n.DEFAULT_LANGUAGE: title})
    )


def get_asset(session: Session, public_id: str) -> Asset | None:
    return session.scalars(sa.select(Asset).where(Asset.public_id == public_id)).one_or_none()


def list_assets(session: Session) -> list[Asset]:
    return list(session.scalars(sa.select(Asset).order_by(Asset.id)))


def attach(session: Session, asset: Asset, form: Form) -> None:
    if asset.archived_at is not None:
        raise AssetError(f"asset {asset.public_id} is archived")
    if form.kind != FormKind.WHITEPAPER:
        raise AssetError(f"form {form.public_id} is a {form.kind} form, not a whitepaper form")
    if not any(p["purpose"] == "whitepaper" for p in form.purposes):
        raise AssetError(f"form {form.public_id} does not ask for the whitepaper purpose")
    link = session.get(FormAsset, form.id)
    if link is None:
        session.add(FormAsset(form_id=form.id, asset_id=asset.id))
    else:
        link.asset_id = asset.id
    session.flush()


def detach(session: Session, form: Form) -> bool:
    """The form hands out no asset any more; False if it had none."""
    link = session.get(FormAsset, form.id)
    if link is None:
        return False
    session.delete(link)
    session.flush()
    return True


def asset_for_form(session: Session, form: Form) -> Asset | None:
    link = session.get(FormAsset, form.id)
    return session.get(Asset, link.asset_id) if link else None


def asset_file(session: Session, asset: Asset) -> Path:
    return settings_of(session).assets_folder / asset.path


# --- download links and mails ------------------------------------------------------


def download_url(session: Session, lead_id: uuid.UUID, asset: Asset, form: Form) -> str:
    token = vault_of(session).sign(
        DOWNLOAD_TOKEN, {"l": lead_id.hex, "a": asset.public_id, "f": form.public_id}
    )
    return f"{settings_of(session).base_url}/d/{token}"


class DownloadCheck(NamedTuple):
    lead: Lead | None
    asset: Asset | None
    form: Form | None
    expired: bool
    # May ask for a new link: not expired, or expired less than one more lifetime ago.
    resendable: bool


def read_download(session: Session, token: str) -> DownloadCheck:
    """What a download token names; raises TokenInvalid for tampered or foreign tokens.

    A link lives ``LEADVAULT_OPTIN_MAX_AGE_DAYS``; for as long again after that it
    may ask for a new one, and then no more (nobody can keep an old link to
    make mails go out for ever).
    """
    vault = vault_of(session)
    max_age = settings_of(session).optin_max_age_days * 86400
    expired, resendable = False, True
    try:
        payload = vault.unsign(DOWNLOAD_TOKEN, token, max_age_seconds=max_age)
    except TokenExpired as exc:
        payload, expired = exc.payload, True
        try:
            vault.unsign(DOWNLOAD_TOKEN, token, max_age_seconds=2 * max_age)
        except TokenExpired:
            resendable = False
    if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in "af"):
        raise TokenInvalid("malformed download token")
    return DownloadCheck(
        leads.get(session, payload_id(payload, "l")),
        get_asset(session, payload["a"]),
        capture_service.get_form(session, payload["f"]),
        expired,
        resendable,
    )


def queue_asset_mail(session: Session, lead: Lead, asset: Asset, form: Form) -> None:
    lang = lead.language
    settings = settings_of(session)
    missing = follow_up_missing(session, form, lead)
    attributes = leads.attributes_of(session, lead)
    context = mail_context(
        session,
        lang,
        time_zone=leads.zone_in(attributes, settings.zone),
        title=asset.title_in(lang),
        download_url=download_url(session, lead.id, asset, form),
        profile_url=profile_url(session, lead.id, form) if missing else None,
        days=settings.optin_max_age_days,
        until=clock.now() + dt.timedelta(days=settings.optin_max_age_days),
        first_name=attributes.get("first_name"),
    )
    content = MailContent(
        to=leads.email_of(session, lead),
        subject=branding.subject(
            settings, i18n.translate(lang, "Your download: %(title)s", title=asset.title_in(lang))
        ),
        **mail_parts("widgets/mail/asset", context),
        language=lang,
    )
    # Delivery of what the lead asked for: transactional, so no unsubscribe header,
    # and bound to the purpose so withdrawing it cancels a queued copy.
    outbox.enqueue_mail(session, content, template="asset", lead=lead, purpose="whitepaper")


def _on_purpose_confirmed(
    session: Session, *, lead_id: uuid.UUID, purpose: str, form_ref: str | None = None, **_: Any
) -> None:
    if purpose != "whitepaper" or not form_ref:
        return
    form = capture_service.get_form(session, form_ref)
    lead = leads.get(session, lead_id)
    asset = asset_for_form(session, form) if form else None
    if form and lead and asset:
        queue_asset_mail(session, lead, asset, form)


def _on_form_submitted(session: Session, *, lead_id: uuid.UUID, form: Form, **_: Any) -> None:
    """A lead who already confirmed gets the asset mail at once, without a new opt-in."""
    if form.kind != FormKind.WHITEPAPER:
        return
    if not consent_service.has_consent(session, lead_id, "whitepaper"):
        return
    lead = leads.get(session, lead_id)
    asset = asset_for_form(session, form)
    if lead and asset:
        queue_asset_mail(session, lead, asset, form)


def _on_confirmation_links(
    session: Session,
    *,
    lead_id: uuid.UUID,
    purposes: list[str],
    form_ref: str | None,
    language: str,
    **_: Any,
) -> list[tuple[str, str]]:
    if "whitepaper" not in purposes or not form_ref:
        return []
    form = capture_service.get_form(session, form_ref)
    asset = asset_for_form(session, form) if form else None
    if not form or not asset or not consent_service.has_consent(session, lead_id, "whitepaper"):
        return []
    label = i18n.translate(language, "Download “%(title)s”", title=asset.title_in(language))
    return [(label, download_url(session, lead_id, asset, form))]


def record_download(session: Session, lead: Lead, asset: Asset) -> None:
    session.execute(
        sa.update(Asset)
        .where(Asset.id == asset.id)
        .values(download_count=Asset.download_count + 1)
        .execution_options(synchronize_session=False)
    )
    leads.touch(lead)
    signals.lead_event.send(
        session,
        lead_id=lead.id,
        event_type="asset_downloaded",
        properties={"asset": asset.public_id, "title": asset.title},
        occurred_at=clock.now(),
    )


# --- progressive profiling ----------------------------------------------------------


def follow_up_missing(session: Session, form: Form, lead: Lead) -> list[str]:
    """The form's follow-up fields this lead has not told us yet, at most two at a time."""
    known = leads.attributes_of(session, lead)
    return [name for name in form.follow_up_fields if name not in known][:MAX_FOLLOW_UP]


def profile_url(session: Session, lead_id: uuid.UUID, form: Form) -> str:
    token = vault_of(session).sign(PROFILE_TOKEN, {"l": lead_id.hex, "f": form.public_id})
    return f"{settings_of(session).base_url}/f/{form.public_id}/more/{token}"


def read_profile_token(session: Session, form: Form, token: str) -> Lead | None:
    """Raises TokenInvalid/TokenExpired; None when the lead is gone."""
    max_age = settings_of(session).optin_max_age_days * 86400 * 4
    payload = vault_of(session).unsign(PROFILE_TOKEN, token, max_age_seconds=max_age)
    if not isinstance(payload, dict) or payload.get("f") != form.public_id:
        raise TokenInvalid("profile token for another form")
    return leads.get(session, payload_id(payload, "l"))


def save_profile(session: Session, lead: Lead, values: dict[str, str]) -> None:
    leads.set_attributes(session, lead, values)
    leads.touch(lead)


def connect_signals() -> None:
    from capture.signals import form_snippets, form_submitted

    signals.purpose_confirmed.connect(_on_purpose_confirmed)
    signals.confirmation_links.connect(_on_confirmation_links)
    form_submitted.connect(_on_form_submitted)
    form_snippets.connect(_on_form_snippets)
