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
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from leadvault import batch, branding, untrusted
from leadvault.db import settings_of

# Lead values the templates pass through the `defuse` filter (the greeting partial):
# what a lead typed must not become a link in a mail client.
DEFUSED = frozenset({"first_name"})


@dataclasses.dataclass(frozen=True)
class _Rendered:
    text: str
    html: str
    slots: dict[str, str]  # value name -> its placeholder
    pattern: re.Pattern[str]
    # The HTML CSS-inlined once, cut at its placeholders: (text before, value name,
    # whether it stands in an attribute). None: inline each mail (see _inlined_once).
    inlined: tuple[list[tuple[str, str, bool]], str] | None = None
    # The text cut at its placeholders: text, placeholder, text, …, text.
    text_cut: list[str] = dataclasses.field(default_factory=list)


def mail_parts(
    session: Session,
    name: str,
    context: dict[str, Any] | Callable[[], dict[str, Any]],
    *,
    shared: Hashable,
    lead_values: Mapping[str, str | None],
    lang: str | None = None,
    lasting: bool = False,
) -> dict[str, str]:
    """``branding.mail_parts(name, {**context, **lead_values})``, rendered once per batch.

    ``shared`` names everything in ``context`` that may differ between the batch's
    mails of one template and language (the purposes asked, the texts shown).
    ``context`` may be a function that makes it, in a batch called only when the
    template is rendered (once per batch and ``shared``); then ``lang`` is its language.
    ``lasting``: the context follows from the settings, the language and ``shared``
    alone (no other state that may change between batches): rendered once per app and
    settings instead (``_lasting``)."""
    make = context if callable(context) else lambda: context
    if batch.active(session) is None:
        return branding.mail_parts(name, {**make(), **lead_values})
    present = tuple(sorted(key for key, value in lead_values.items() if value))
    key = f"leadvault.mail:{name}:{lang or make()['lang']}:{shared!r}:{present}"

    def render() -> _Rendered:
        return _render(name, make(), present, lead_values)

    rendered: _Rendered = batch.cached(
        session, key, (lambda: _lasting(session, key, render)) if lasting else render
    )
    text_values = {}
    for value_name, slot in rendered.slots.items():
        value = str(lead_values[value_name])
        if value_name in DEFUSED:
            value = untrusted.defuse(value)
        text_values[slot] = value
    # As pattern.sub(values) would put them in, without searching the text each mail.
    pieces = rendered.text_cut.copy()
    for n in range(1, len(pieces), 2):
        pieces[n] = text_values[pieces[n]]
    text = "".join(pieces)
    if rendered.inlined is not None and all(
        _SERIALISED.match(value) for value in text_values.values()
    ):
        return {"text": text, "html": _put_in(rendered.inlined, text_values)}
    html_values = {slot: _escape(value) for slot, value in text_values.items()}
    html = rendered.pattern.sub(lambda m: html_values[m[0]], rendered.html)
    return {"text": text, "html": branding.inline_css(html)}


# Values css-inline's parser and serialiser give back as they were, but for the
# characters _serialise escapes: no control or format characters (the parser drops
# or replaces some), nothing but printable text, spaces and non-breaking spaces.
_SERIALISED = re.compile(r"[^\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\ufeff]*\Z")


def _serialise(value: str, in_attribute: bool) -> str:
    """``value`` as css-inline (html5ever) writes it back after parsing the escaped
    text: ``&`` and non-breaking spaces as entities, then ``"`` in an attribute
    (always double-quoted) or ``<`` and ``>`` in text."""
    value = value.replace("&", "&amp;").replace("\u00a0", "&nbsp;")
    if in_attribute:
        return value.replace('"', "&quot;")
    return value.replace("<", "&lt;").replace(">", "&gt;")


def _put_in(inlined: tuple[list[tuple[str, str, bool]], str], values: dict[str, str]) -> str:
    pieces, tail = inlined
    out: list[str] = []
    for before, slot, in_attribute in pieces:
        out.append(before)
        out.append(_serialise(values[slot], in_attribute))
    out.append(tail)
    return "".join(out)


# Each value of a probe through both ways: a template where they differ (a placeholder
# where the cut cannot tell text from attribute) is inlined per mail, as before.
_PROBE = "a&b<c>\"d'e\u00a0f &amp; g"


def _inlined_once(
    html: str, slots: dict[str, str], pattern: re.Pattern[str]
) -> tuple[list[tuple[str, str, bool]], str] | None:
    """The HTML with its placeholders CSS-inlined once (about a tenth of an item's
    CPU per mail otherwise), cut at each placeholder; None when that would not give
    what inlining each mail gives."""
    if not slots:
        return None
    inlined = branding.inline_css(html)
    pieces: list[tuple[str, str, bool]] = []
    start = 0
    for match in pattern.finditer(inlined):
        before = inlined[start : match.start()]
        # Inside a tag when its last "<" comes after its last ">" (the serialiser
        # escapes both in text, and template attributes hold neither).
        in_attribute = inlined.rfind("<", 0, match.start()) > inlined.rfind(">", 0, match.start())
        pieces.append((before, match[0], in_attribute))
        start = match.end()
    cut = (pieces, inlined[start:])
    probe = dict.fromkeys(slots.values(), _PROBE)
    escaped = pattern.sub(lambda m: _escape(_PROBE), html)
    if _put_in(cut, probe) != branding.inline_css(escaped):
        return None
    return cut


def _escape(value: str) -> str:
    """As Jinja's autoescape writes a value into HTML (the same five entities)."""
    for char, entity in _ENTITIES:
        value = value.replace(char, entity)
    return value


_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;"))


# Renders kept across batches (``lasting``): a few per template, language and purpose set;
# placeholders stand for every lead value present, so they hold no lead's data.
LASTING_MAX = 64


def _lasting(session: Session, key: str, render: Callable[[], _Rendered]) -> _Rendered:
    """``render()`` once per app and settings object (a worker's batches render the
    same opt-in mail again otherwise: templates and catalogues do not change while an
    app runs, and a new settings object is a miss); the oldest goes past LASTING_MAX."""
    from flask import current_app

    settings = settings_of(session)
    kept: dict[str, tuple[object, _Rendered]] = current_app.extensions.setdefault(
        "leadvault.batch_mail", {}
    )
    found = kept.get(key)
    if found is not None and found[0] is settings:
        return found[1]
    rendered = kept[key] = (settings, render())
    while len(kept) > LASTING_MAX:
        kept.pop(next(iter(kept)), None)
    return rendered[1]


def _render(
    name: str, context: dict[str, Any], present: tuple[str, ...], values: Mapping[str, Any]
) -> _Rendered:
    from flask import render_template

    # Letters and digits only: no filter or escaping changes them.
    slots = {value_name: f"lvslot{secrets.token_hex(8)}" for value_name in present}
    absent = {key: value for key, value in values.items() if key not in slots}
    full = {**context, **absent, **slots}
    html = render_template(f"{name}.html", **full)
    pattern = re.compile("|".join(slots.values()) or r"(?!)")
    text = render_template(f"{name}.txt", **full)
    return _Rendered(
        text=text,
        html=html,
        slots=slots,
        pattern=pattern,
        inlined=_inlined_once(html, slots, pattern),
        text_cut=re.split(f"({pattern.pattern})", text),
    )
