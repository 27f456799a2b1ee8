"""The checks of a form definition: the definition as column values, or the first problem.

Fields, purposes and the consent text version shown per language, origins, the
texts visitors see, and a redirect only onto one of the form's allowed origins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.definitions import (
    FIELD_NAMES,
    INTRO_MAX,
    ORIGINS_MAX,
    PROFILE_FIELDS,
    THANK_YOU_MAX,
    TITLE_MAX,
    Definition,
    FieldSpec,
    FormError,
    PurposeSpec,
)
from capture.models import Form, FormKind
from capture.origins import normalise_origin, on_origins
from consent import service as consent_service
from leadvault import i18n, untrusted
from leadvault.i18n import N_


def check(session: Session, d: Definition, *, current: Form | None) -> dict[str, Any]:
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
    parts = on_origins(origins, url)
    if parts is None:
        raise FormError(
            N_("The redirect must be a page on one of the form's allowed origins."),
            "redirect_url",
        )
    return parts.geturl()
