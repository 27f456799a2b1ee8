"""Form definitions: create, edit, archive and delete the forms owners embed.

One set of functions for the command line, the admin API and the console: each
takes a session, checks the whole definition (fields, purposes and the consent
text versions shown per language, origins, where visitors go afterwards) and
flushes; the caller's unit of work commits. A form that took a submission is
never deleted, only archived: the consent ledger and the leads' sources name it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.models import Form, FormKind, Submission
from consent import service as consent_service
from consent.models import LedgerEntry
from leadvault import i18n, untrusted
from leadvault.crypto import random_token
from leadvault.i18n import N_

# Every field a form may declare, besides the always-required email.
FIELD_NAMES = (
    "first_name",
    "last_name",
    "company",
    "job_title",
    "phone",
    "country",
    "company_size",
    "message",
)
# Fields kept on the lead's profile; "message" belongs to the submission only.
PROFILE_FIELDS = tuple(name for name in FIELD_NAMES if name != "message")
# The purpose a form of each kind asks for when none is named.
DEFAULT_PURPOSE = {
    FormKind.NEWSLETTER: "newsletter",
    FormKind.WHITEPAPER: "whitepaper",
    FormKind.CONTACT: "sales_contact",
}
TITLE_MAX = 200
INTRO_MAX = 2000
THANK_YOU_MAX = 1000
ORIGINS_MAX = 50
_DEFAULT_PORTS = {"http": 80, "https": 443}


_change_listeners: list[Callable[[str], None]] = []


def on_change(listener: Callable[[str], None]) -> None:
    """Call ``listener(public_id)`` whenever a form's definition or state changes
    (caches of forms forget it)."""
    _change_listeners.append(listener)


def _changed(form: Form) -> None:
    for listener in _change_listeners:
        listener(form.public_id)


class FormError(Exception):
    """A form definition the service refuses.

    ``message`` is an English message id (translated with ``params`` for the
    console); ``field`` names the part of the definition it is about.
    """

    def __init__(self, message: str, field: str | None = None, **params: Any) -> None:
        self.message, self.field, self.params = message, field, params
        super().__init__(message % params if params else message)

    def translated(self, lang: str) -> str:
        return i18n.translate(lang, self.message, **self.params)


class FormInUse(FormError):
    """Deleting a form that took submissions: archive it instead."""


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    name: str
    required: bool


@dataclasses.dataclass(frozen=True)
class PurposeSpec:
    purpose: str
    required: bool


def normalise_origin(origin: str) -> str:
    parts = urlsplit(origin.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
        raise FormError(
            N_("%(origin)s is not an origin such as https://www.example.com"),
            "allowed_origins",
            origin=repr(origin),
        )
    try:
        port_number = parts.port
    except ValueError:
        raise FormError(
            N_("%(origin)s has a port that is not a number"), "allowed_origins", origin=repr(origin)
        ) from None
    port = f":{port_number}" if port_number and port_number != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def page_on_owner_site(form: Form, url: str) -> SplitResult | None:
    """``url`` taken apart when it is a page on one of the form's allowed origins, else None.

    A submitted ``page_url`` or referrer is whatever the sender wrote: only an
    http(s) address whose origin the owner allowed for this form (same scheme,
    host and port; no user info, no backslash that browsers read as a slash)
    may become a link. The result holds no user info.
    """
    return _on_origins(form.allowed_origins, url)


def _on_origins(origins: Sequence[str], url: str) -> SplitResult | None:
    if not origins or "\\" in url or untrusted.control_character(url):
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    try:
        origin = normalise_origin(f"{parts.scheme}://{parts.netloc}")
    except FormError:
        return None
    if origin not in origins:
        return None
    return parts._replace(netloc=origin.split("://", 1)[1])


@dataclasses.dataclass(frozen=True)
class Definition:
    """Everything an owner decides about a form (``None`` texts: none in that language)."""

    name: str
    kind: str
    fields: Sequence[FieldSpec]
    purposes: Sequence[PurposeSpec]
    allowed_origins: Sequence[str] = ()
    title: Mapping[str, str] | None = None
    intro: Mapping[str, str] | None = None
    thank_you: Mapping[str, str] | None = None
    redirect_url: str | None = None
    proof_of_work: bool = False
    follow_up_fields: Sequence[str] = ()
    # {"de": {"newsletter": 3}}: the consent text version shown per language and
    # purpose; a purpose not named here shows its newest version.
    consent_versions: Mapping[str, Mapping[str, int]] | None = None


def create_form(session: Session, definition: Definition | None = None, **values: Any) -> Form:
    """A new form from ``definition`` (or the same values as keywords)."""
    checked = _check(session, definition or Definition(**values), current=None)
    form = Form(public_id=_new_public_id(), **checked)
    session.add(form)
    session.flush()
    return form


def update_form(session: Session, form: Form, definition: Definition) -> list[str]:
    """Replace the form's definition; returns the names of what changed (for the audit trail).

    The public id stays, so every embed keeps working. Consent text versions
    not named keep the version the form showed so far (a new version is chosen
    on purpose, never by an unrelated edit).
    """
    checked = _check(session, definition, current=form)
    changed = [key for key, value in checked.items() if getattr(form, key) != value]
    for key in changed:
        setattr(form, key, checked[key])
    session.flush()
    _changed(form)
    return changed


def definition_of(session: Session, form: Form) -> Definition:
    """The form's definition as it stands (the start of an edit)."""
    return Definition(
        name=form.name,
        kind=form.kind,
        fields=[FieldSpec(f["name"], bool(f["required"])) for f in form.fields],
        purposes=[PurposeSpec(p["purpose"], bool(p["required"])) for p in form.purposes],
        allowed_origins=list(form.allowed_origins),
        title=dict(form.title) if form.title else None,
        intro=dict(form.intro) if form.intro else None,
        thank_you=dict(form.thank_you) if form.thank_you else None,
        redirect_url=form.redirect_url,
        proof_of_work=form.proof_of_work,
        follow_up_fields=list(form.follow_up_fields),
        consent_versions=consent_versions_of(session, form),
    )


def consent_versions_of(session: Session, form: Form) -> dict[str, dict[str, int]]:
    """{language: {purpose: version}} of the consent texts the form shows."""
    shown: dict[str, dict[str, int]] = {}
    for lang, texts in (form.consent_texts or {}).items():
        for purpose, text_id in texts.items():
            text = consent_service.text_by_id(session, text_id)
            if text is not None:
                shown.setdefault(lang, {})[purpose] = text.version
    return shown


def set_active(session: Session, form: Form, active: bool) -> bool:
    """Archive (``active=False``: no more submissions; the form stays with its history) or
    take submissions again; False if the form already was so."""
    if form.active == active:
        return False
    form.active = active
    session.flush()
    _changed(form)
    return True


def archive_form(session: Session, form: Form) -> bool:
    return set_active(session, form, False)


def in_use(session: Session, form: Form) -> bool:
    """Whether a submission or a consent ledger entry names the form (then it is only archived)."""
    submitted = session.scalar(
        sa.select(Submission.id).where(Submission.form_id == form.id).limit(1)
    )
    if submitted is not None:
        return True
    named = session.scalar(
        sa.select(LedgerEntry.id).where(LedgerEntry.form_ref == form.public_id).limit(1)
    )
    return named is not None


def delete_form(session: Session, form: Form) -> None:
    """Delete a form that was never used; a used one raises :class:`FormInUse`."""
    if in_use(session, form):
        raise FormInUse(
            N_("This form has taken submissions: archive it instead of deleting it."), "form"
        )
    session.delete(form)
    session.flush()
    _changed(form)


def _new_public_id() -> str:
    """A random form id that does not start with "-" (a command line would take
    it for an option: `leadvault forms show -abc` fails)."""
    while (public_id := random_token(12)).startswith("-"):
        pass
    return public_id


# --- checks -------------------------------------------------------------------------------


def _check(session: Session, d: Definition, *, current: Form | None) -> dict[str, Any]:
    """The definition as column values, or :class:`FormError` naming the first problem."""
    name = d.name.strip()
    if not name:
        raise FormError(N_("A form needs a name."), "name")
    if len(name) > 120:
        raise FormError(N_("Please use at most %(max)s characters."), "name", max=120)
    if d.kind not in set(FormKind):
        raise FormError(N_("The kind must be one of %(kinds)s."), "kind", kinds=", ".join(FormKind))
    origins = sorted({normalise_origin(o) for o in d.allowed_origins})
    if len(origins) > ORIGINS_MAX:
        raise FormError(N_("At most %(max)s origins."), "allowed_origins", max=ORIGINS_MAX)
    return {
        "name": name,
        "kind": d.kind,
        "fields": _fields(d.fields),
        "follow_up_fields": _follow_ups(d.follow_up_fields),
        "purposes": _purposes(session, d.purposes),
        "consent_texts": _consent_texts(session, d, current),
        "allowed_origins": origins,
        "title": _texts(d.title, "title", TITLE_MAX, multiline=False),
        "intro": _texts(d.intro, "intro", INTRO_MAX, multiline=True),
        "thank_you": _texts(d.thank_you, "thank_you", THANK_YOU_MAX, multiline=True),
        "redirect_url": _redirect(d.redirect_url, origins),
        "proof_of_work": bool(d.proof_of_work),
    }


def _fields(specs: Sequence[FieldSpec]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for spec in specs:
        if spec.name not in FIELD_NAMES:
            raise FormError(
                N_("Unknown field %(name)s; fields are %(names)s."),
                "fields",
                name=repr(spec.name),
                names=", ".join(FIELD_NAMES),
            )
        if spec.name in seen:
            raise FormError(N_("The field %(name)s is declared twice."), "fields", name=spec.name)
        seen.add(spec.name)
    return [{"name": f.name, "required": bool(f.required)} for f in specs]


def _follow_ups(names: Sequence[str]) -> list[str]:
    for name in names:
        if name not in PROFILE_FIELDS:
            raise FormError(
                N_("The follow-up field %(name)s is not a profile field."),
                "follow_up_fields",
                name=repr(name),
            )
    return list(dict.fromkeys(names))


def _purposes(session: Session, specs: Sequence[PurposeSpec]) -> list[dict[str, Any]]:
    if not specs:
        raise FormError(N_("A form needs at least one purpose to ask consent for."), "purposes")
    known = consent_service.purpose_keys(session)
    seen: set[str] = set()
    for spec in specs:
        if spec.purpose not in known:
            raise FormError(
                N_("Unknown purpose %(purpose)s; purposes are %(purposes)s."),
                "purposes",
                purpose=repr(spec.purpose),
                purposes=", ".join(sorted(known)),
            )
        if spec.purpose in seen:
            raise FormError(
                N_("The purpose %(purpose)s is named twice."), "purposes", purpose=spec.purpose
            )
        seen.add(spec.purpose)
    return [{"purpose": p.purpose, "required": bool(p.required)} for p in specs]


def _consent_texts(
    session: Session, d: Definition, current: Form | None
) -> dict[str, dict[str, int]]:
    """{language: {purpose: consent_texts.id}}: the chosen version, else the form's current
    one, else the newest."""
    from consent.models import ConsentText

    chosen = d.consent_versions or {}
    unknown = set(chosen) - set(i18n.LANGUAGES)
    if unknown:
        raise FormError(
            N_("There is no language %(lang)s."), "consent_versions", lang=sorted(unknown)[0]
        )
    texts: dict[str, dict[str, int]] = {lang: {} for lang in i18n.LANGUAGES}
    for spec in d.purposes:
        for lang in i18n.LANGUAGES:
            version = chosen.get(lang, {}).get(spec.purpose)
            pinned = _pinned(current, lang, spec.purpose)
            if version is not None:
                text = session.scalars(
                    sa.select(ConsentText).where(
                        ConsentText.purpose == spec.purpose,
                        ConsentText.language == lang,
                        ConsentText.version == version,
                    )
                ).one_or_none()
                if text is None:
                    raise FormError(
                        N_(
                            "The purpose %(purpose)s has no consent text version %(version)s "
                            "in %(lang)s."
                        ),
                        "consent_versions",
                        purpose=spec.purpose,
                        version=version,
                        lang=lang,
                    )
                texts[lang][spec.purpose] = text.id
            elif pinned is not None:
                texts[lang][spec.purpose] = pinned
            else:
                latest = consent_service.latest_text(session, spec.purpose, lang)
                if latest is None:
                    raise FormError(
                        N_("The purpose %(purpose)s has no consent text in %(lang)s."),
                        "purposes",
                        purpose=spec.purpose,
                        lang=lang,
                    )
                texts[lang][spec.purpose] = latest.id
    for purpose_texts in chosen.values():
        for purpose in purpose_texts:
            if purpose not in {p.purpose for p in d.purposes}:
                raise FormError(
                    N_("The form does not ask for the purpose %(purpose)s."),
                    "consent_versions",
                    purpose=purpose,
                )
    return texts


def _pinned(current: Form | None, lang: str, purpose: str) -> int | None:
    if current is None:
        return None
    return (current.consent_texts or {}).get(lang, {}).get(purpose)


def _texts(
    values: Mapping[str, str] | None, part: str, max_length: int, *, multiline: bool
) -> dict[str, str] | None:
    """Per-language texts shown to visitors; empty ones are left out."""
    kept: dict[str, str] = {}
    for lang, given in (values or {}).items():
        if lang not in i18n.LANGUAGES:
            raise FormError(N_("There is no language %(lang)s."), part, lang=lang)
        text = (given or "").strip()
        if not text:
            continue
        if len(text) > max_length:
            raise FormError(N_("Please use at most %(max)s characters."), part, max=max_length)
        if untrusted.control_character(text, multiline=multiline) is not None:
            raise FormError(N_("Please remove line breaks and invisible control characters."), part)
        kept[lang] = text
    return kept or None


def _redirect(url: str | None, origins: Sequence[str]) -> str | None:
    """Visitors are sent only to a page on one of the form's own sites (no open redirect)."""
    url = (url or "").strip()
    if not url:
        return None
    if len(url) > 500:
        raise FormError(N_("Please use at most %(max)s characters."), "redirect_url", max=500)
    parts = _on_origins(origins, url)
    if parts is None:
        raise FormError(
            N_("The redirect must be a page on one of the form's allowed origins."),
            "redirect_url",
        )
    return parts.geturl()
