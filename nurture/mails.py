"""Nurture mails: personalise a template, wrap it in the instance's mail layout, queue it.

Every mail carries one-click unsubscribe (RFC 8058) for the sequence's purpose,
a ``List-Id`` per sequence and, when ``LEADVAULT_BOUNCE_DOMAIN`` is set, a VERP
return path ``bounce+<send id>-<tag>@domain`` so a bounce names the mail it
answers. Links go through the click redirect only for leads who confirmed
``tracking``; for everyone else they point straight at their target.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from consent import rights
from consent import service as consent_service
from leadvault import clock, i18n, leads, outbox
from leadvault import mail as mail_layer
from leadvault.branding import mail_parts
from leadvault.db import mail_context, settings_of, vault_of
from leadvault.mail import MailContent
from leadvault.models import Lead, OutboxMessage
from nurture import render
from nurture.definition import Sequence
from nurture.models import Send

CLICK_TOKEN = "nurture-click"
VERP_TAG = "nurture-verp"
TEMPLATE_PREFIX = "nurture:"  # outbox template "nurture:<sequence key>"


def outbox_template(key: str) -> str:
    return f"{TEMPLATE_PREFIX}{key}"


def greeting(lang: str, first_name: str | None) -> str:
    """ "Hallo Julia," when we know the first name, else "Guten Tag," (German: "Sie")."""
    name = " ".join((first_name or "").split())
    if name:
        return i18n.translate(lang, "Hi %(name)s,", name=name)
    return i18n.translate(lang, "Hello,")


def personal_values(attributes: dict[str, str], lang: str) -> dict[str, str]:
    values = {name: attributes.get(name, "") for name in render.VARIABLES if name != "greeting"}
    values["greeting"] = greeting(lang, attributes.get("first_name"))
    return values


def verp_address(session: Session, send_id: int) -> str | None:
    domain = settings_of(session).bounce_domain
    if not domain:
        return None
    reference = f"{send_id:x}"
    return f"bounce+{reference}-{vault_of(session).short_tag(VERP_TAG, reference)}@{domain}"


def read_verp(session: Session, address: str) -> int | None:
    """The send id a VERP address names, or None when it is not one of ours."""
    _name, address = parseaddr(address)
    local = address.rpartition("@")[0].lower()
    found = re.fullmatch(r"bounce\+([0-9a-f]{1,16})-([0-9a-f]{12,32})", local)
    if found is None:
        return None
    reference, tag = found.groups()
    if not vault_of(session).check_short_tag(VERP_TAG, reference, tag):
        return None
    return int(reference, 16)


def _list_key(sequence: Sequence) -> str:
    return f"{sequence.key}.nurture"


def list_id(session: Session, sequence: Sequence) -> str:
    """RFC 2919: ``"Name" <key.nurture.list-domain>`` (made by ``leadvault.mail.list_id``)."""
    return mail_layer.list_id(settings_of(session).mail_from, _list_key(sequence), sequence.name)


def language_for(sequence: Sequence, lead_language: str) -> str:
    return lead_language if lead_language in sequence.languages else sequence.languages[0]


def compose(
    session: Session,
    sequence: Sequence,
    mail: str,
    lang: str,
    values: dict[str, str],
    *,
    link_url: render.LinkMapper,
    unsubscribe_url: str | None,
) -> tuple[str, str, str]:
    """Subject, HTML and text of a mail in the instance's mail layout."""
    rendered = render.render(sequence.mail_for(mail, lang), values, link_url)
    context: dict[str, Any] = mail_context(
        session,
        lang,
        subject=rendered.subject,
        body_html=Markup(rendered.html),  # noqa: S704 - markdown-it output of an escaped source
        body_text=rendered.text,
        unsubscribe_url=unsubscribe_url,
        purpose=consent_service.purpose_label(sequence.purpose, lang),
    )
    parts = mail_parts("nurture/mail", context)
    return rendered.subject, parts["html"], parts["text"]


def new_send(
    *, lead: Lead, sequence: Sequence, enrollment_id: int, step: str, mail: str, tracked: bool
) -> Send:
    """The record of a mail step about to be queued (add it, flush, then ``queue_send``)."""
    return Send(
        enrollment_id=enrollment_id,
        lead_id=lead.id,
        sequence_key=sequence.key,
        version=sequence.version,
        step=step,
        mail=mail,
        language=language_for(sequence, lead.language),
        tracked=tracked,
        queued_at=clock.now(),
    )


def queue_send(
    session: Session, send: Send, *, lead: Lead, attributes: dict[str, str], sequence: Sequence
) -> OutboxMessage:
    """Render a flushed send's mail for its lead and queue it in the caller's transaction.

    The outbox row is left unflushed: the caller flushes a tick's rows together and
    then sets ``send.outbox_id``."""
    lang = send.language

    def link(index: int, target: str) -> str:
        if not send.tracked:
            return target
        token = vault_of(session).sign(CLICK_TOKEN, {"s": send.id, "k": index, "u": target})
        return f"{settings_of(session).base_url}/n/{token}"

    subject, html, text = compose(
        session,
        sequence,
        send.mail,
        lang,
        personal_values(attributes, lang),
        link_url=link,
        unsubscribe_url=rights.unsubscribe_url(session, lead.id, sequence.purpose),
    )
    headers = rights.marketing_headers(
        session,
        lead.id,
        sequence.purpose,
        list_key=_list_key(sequence),
        list_name=sequence.name,
    )
    verp = verp_address(session, send.id)
    if verp is not None:
        headers["Return-Path"] = f"<{verp}>"
    content = MailContent(
        to=leads.email_of(session, lead),
        subject=subject,
        text=text,
        html=html,
        headers=headers,
        language=lang,
    )
    return outbox.enqueue_mail(
        session,
        content,
        template=outbox_template(sequence.key),
        lead=lead,
        purpose=sequence.purpose,
        flush=False,
    )


def preview(
    session: Session, sequence: Sequence, mail: str, lang: str, values: dict[str, str] | None = None
) -> MailContent:
    """The mail as a lead would get it (sample values unless given; links untracked)."""
    sample = dict(values or render.SAMPLE)
    if values is None:
        sample["greeting"] = greeting(lang, sample.get("first_name"))
    subject, html, text = compose(
        session,
        sequence,
        mail,
        lang,
        sample,
        link_url=lambda _index, target: target,
        unsubscribe_url=f"{settings_of(session).base_url}/u/preview",
    )
    return MailContent(
        to="",
        subject=subject,
        text=text,
        html=html,
        headers={"List-Id": list_id(session, sequence)},
    )


def send_test(session: Session, sequence: Sequence, mail: str, lang: str, to: str) -> OutboxMessage:
    """Queue the preview to the editor's own address (about no lead, under no purpose)."""
    content = preview(session, sequence, mail, lang)
    test = MailContent(
        to=to,
        subject=f"[Test] {content.subject}",
        text=content.text,
        html=content.html,
        headers=content.headers,
        language=lang,
    )
    return outbox.enqueue_mail(session, test, template="nurture-test", lead=None)
