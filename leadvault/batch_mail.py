"""Lead mails rendered once per worker batch, with each lead's own values put in.

A batch of submissions queues many opt-in mails that differ only in a few values
(the first name, the confirmation link). In a worker's batch
(``leadvault.batch``) the templates are rendered once for each mail, language,
shared context and set of values present, with a placeholder for each lead
value; each mail then gets its values put in as the template would have
written them (escaped in HTML; a typed name defused as the greeting does), and
its HTML CSS-inlined as ``branding.mail_parts`` does. The result is the same
text, character for character (tests/test_batch_mail.py). Outside a batch the
mail is rendered as before.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Hashable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from leadvault import batch, branding, untrusted

# Lead values the templates pass through the `defuse` filter (the greeting partial):
# what a lead typed must not become a link in a mail client.
DEFUSED = frozenset({"first_name"})


@dataclasses.dataclass(frozen=True)
class _Rendered:
    text: str
    html: str
    slots: dict[str, str]  # value name -> its placeholder
    pattern: re.Pattern[str]


def mail_parts(
    session: Session,
    name: str,
    context: dict[str, Any],
    *,
    shared: Hashable,
    lead_values: Mapping[str, str | None],
) -> dict[str, str]:
    """``branding.mail_parts(name, {**context, **lead_values})``, rendered once per batch.

    ``shared`` names everything in ``context`` that may differ between the batch's
    mails of one template and language (the purposes asked, the texts shown)."""
    if batch.active(session) is None:
        return branding.mail_parts(name, {**context, **lead_values})
    present = tuple(sorted(key for key, value in lead_values.items() if value))
    key = f"leadvault.mail:{name}:{context['lang']}:{shared!r}:{present}"
    rendered: _Rendered = batch.cached(
        session, key, lambda: _render(name, context, present, lead_values)
    )
    text_values, html_values = {}, {}
    for value_name, slot in rendered.slots.items():
        value = str(lead_values[value_name])
        if value_name in DEFUSED:
            value = untrusted.defuse(value)
        text_values[slot] = value
        html_values[slot] = _escape(value)
    return {
        "text": rendered.pattern.sub(lambda m: text_values[m[0]], rendered.text),
        "html": branding.inline_css(
            rendered.pattern.sub(lambda m: html_values[m[0]], rendered.html)
        ),
    }


def _escape(value: str) -> str:
    """As Jinja's autoescape writes a value into HTML (the same five entities)."""
    for char, entity in _ENTITIES:
        value = value.replace(char, entity)
    return value


_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;"))


def _render(
    name: str, context: dict[str, Any], present: tuple[str, ...], values: Mapping[str, Any]
) -> _Rendered:
    from flask import render_template

    # Letters and digits only: no filter or escaping changes them.
    slots = {value_name: f"lvslot{secrets.token_hex(8)}" for value_name in present}
    absent = {key: value for key, value in values.items() if key not in slots}
    full = {**context, **absent, **slots}
    return _Rendered(
        text=render_template(f"{name}.txt", **full),
        html=render_template(f"{name}.html", **full),
        slots=slots,
        pattern=re.compile("|".join(slots.values()) or r"(?!)"),
    )
