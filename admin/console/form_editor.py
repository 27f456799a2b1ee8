"""The console's form editor (flask-wtf): one field per choice an owner makes, turned
into the definition that ``capture.schemas.FormDefinitionSchema`` checks and
``admin.forms`` stores — the same path as the admin API.

The choices depend on the database (purposes and their consent text versions,
assets), so the form class is built per request. Labels live in the template;
the messages here are translated when the class is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from sqlalchemy.orm import Session
from wtforms import (
    BooleanField,
    Field,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional
from wtforms.validators import ValidationError as WtfError

from capture import definition_service, definitions, schemas
from capture.definitions import Definition, FormError
from capture.models import Form, FormKind
from consent import service as consent_service
from consent.models import ConsentText
from leadvault import i18n
from leadvault.i18n import N_
from widgets import service as widgets

LANGUAGES = i18n.LANGUAGES
KINDS = {
    FormKind.NEWSLETTER: N_("Newsletter"),
    FormKind.WHITEPAPER: N_("Whitepaper download"),
    FormKind.CONTACT: N_("Contact request"),
}
ASKED = {"": N_("Not asked"), "optional": N_("Optional"), "required": N_("Required")}
_EXCERPT = 70


@dataclasses.dataclass(frozen=True)
class PurposeChoice:
    key: str
    label: str
    # {language: [(version, excerpt of its text)]}, newest first
    versions: dict[str, list[tuple[int, str]]]


def purpose_choices(session: Session) -> list[PurposeChoice]:
    texts = session.scalars(
        sa.select(ConsentText).order_by(ConsentText.purpose, ConsentText.version.desc())
    )
    by_purpose: dict[str, dict[str, list[tuple[int, str]]]] = {}
    for text in texts:
        excerpt = text.text if len(text.text) <= _EXCERPT else text.text[:_EXCERPT] + "…"
        by_purpose.setdefault(text.purpose, {}).setdefault(text.language, []).append(
            (text.version, excerpt)
        )
    lang = i18n.current_language()
    return [
        PurposeChoice(
            purpose.key, consent_service.purpose_label(purpose.key, lang), by_purpose[purpose.key]
        )
        for purpose in consent_service.purposes(session)
        if all(by_purpose.get(purpose.key, {}).get(lang_) for lang_ in LANGUAGES)
    ]


def _t(message: str, **values: Any) -> str:
    return i18n.gettext(message, **values)


def editor_class(purposes: list[PurposeChoice], assets: list[str]) -> type[FlaskForm]:
    too_long = _t(N_("Please use at most %(max)s characters."), max="%(max)d")

    def length(high: int) -> Length:
        return Length(max=high, message=too_long)

    class Editor(FlaskForm):
        name = StringField(
            validators=[InputRequired(_t(N_("Please give the form a name."))), length(120)]
        )
        kind = SelectField(choices=[k.value for k in KINDS], default="newsletter")
        allowed_origins = TextAreaField(validators=[Optional(), length(5000)])
        after = RadioField(choices=["thanks", "redirect"], default="thanks")
        redirect_url = StringField(validators=[Optional(), length(500)])
        follow_up_fields = SelectMultipleField(
            choices=list(definitions.PROFILE_FIELDS), validate_choice=True
        )
        proof_of_work = BooleanField()
        asset = SelectField(choices=["", *assets], default="")

        def validate_redirect_url(self, field: Field) -> None:
            if self.after.data == "redirect" and not (field.data or "").strip():
                raise WtfError(_t(N_("Please enter the page visitors go to after submitting.")))

    for lang in LANGUAGES:
        setattr(Editor, f"title_{lang}", StringField(validators=[Optional(), length(200)]))
        setattr(Editor, f"intro_{lang}", TextAreaField(validators=[Optional(), length(2000)]))
        setattr(Editor, f"thank_you_{lang}", TextAreaField(validators=[Optional(), length(1000)]))
    for name in definitions.FIELD_NAMES:
        setattr(Editor, f"field_{name}", SelectField(choices=list(ASKED), default=""))
    for purpose in purposes:
        # Checked by definition(): a purpose left out of the post is not asked.
        setattr(
            Editor,
            f"purpose_{purpose.key}",
            SelectField(choices=list(ASKED), validate_choice=False, default=""),
        )
        for lang in LANGUAGES:
            versions = [str(v) for v, _excerpt in purpose.versions[lang]]
            setattr(
                Editor,
                f"version_{purpose.key}_{lang}",
                SelectField(choices=versions, validate_choice=False, default=versions[0]),
            )
    return Editor


def defaults(purposes: list[PurposeChoice]) -> dict[str, Any]:
    """What a new form starts with: a newsletter asking for the first name (optional)."""
    data: dict[str, Any] = {"kind": "newsletter", "after": "thanks", "field_first_name": "optional"}
    for purpose in purposes:
        data[f"purpose_{purpose.key}"] = "required" if purpose.key == "newsletter" else ""
        for lang in LANGUAGES:
            data[f"version_{purpose.key}_{lang}"] = str(purpose.versions[lang][0][0])
    return data


def data_of(session: Session, form: Form, purposes: list[PurposeChoice]) -> dict[str, Any]:
    """The editor's fields filled from a stored form."""
    current = definition_service.definition_of(session, form)
    data = defaults(purposes)
    data.update(
        name=current.name,
        kind=current.kind,
        allowed_origins="\n".join(current.allowed_origins),
        after="redirect" if current.redirect_url else "thanks",
        redirect_url=current.redirect_url or "",
        follow_up_fields=list(current.follow_up_fields),
        proof_of_work=current.proof_of_work,
        asset=(found.public_id if (found := widgets.asset_for_form(session, form)) else ""),
    )
    data["field_first_name"] = ""
    for spec in current.fields:
        data[f"field_{spec.name}"] = "required" if spec.required else "optional"
    for purpose in purposes:
        data[f"purpose_{purpose.key}"] = ""
    for spec in current.purposes:
        data[f"purpose_{spec.purpose}"] = "required" if spec.required else "optional"
    for lang, chosen in (current.consent_versions or {}).items():
        for key, version in chosen.items():
            data[f"version_{key}_{lang}"] = str(version)
    for part in ("title", "intro", "thank_you"):
        for lang, text in (getattr(current, part) or {}).items():
            data[f"{part}_{lang}"] = text
    return data


def definition(editor: FlaskForm, purposes: list[PurposeChoice]) -> Definition:
    """The definition the editor describes, checked by the API's schema (raises FormError)."""
    field = editor._fields
    states = {p.key: field[f"purpose_{p.key}"].data for p in purposes}
    asked = {key: state for key, state in states.items() if state and state in ASKED}
    origins = (field["allowed_origins"].data or "").splitlines()
    raw: dict[str, Any] = {
        "name": field["name"].data or "",
        "kind": field["kind"].data,
        "fields": [
            {"name": name, "required": field[f"field_{name}"].data == "required"}
            for name in definitions.FIELD_NAMES
            if field[f"field_{name}"].data
        ],
        "purposes": [
            {"purpose": key, "required": state == "required"}
            for key, state in asked.items()
            if state
        ],
        "consent_versions": {
            lang: {key: _version(field[f"version_{key}_{lang}"].data) for key in asked}
            for lang in LANGUAGES
        },
        "allowed_origins": [line.strip() for line in origins if line.strip()],
        "redirect_url": (field["redirect_url"].data or None)
        if field["after"].data == "redirect"
        else None,
        "proof_of_work": bool(field["proof_of_work"].data),
        "follow_up_fields": list(field["follow_up_fields"].data or []),
    }
    for part in ("title", "intro", "thank_you"):
        raw[part] = {lang: field[f"{part}_{lang}"].data or "" for lang in LANGUAGES}
    if not raw["purposes"]:
        raise FormError(N_("A form needs at least one purpose to ask consent for."), "purposes")
    try:
        loaded = schemas.FormDefinitionSchema().load(raw)
    except ValidationError as exc:
        part = next(iter(exc.messages)) if isinstance(exc.messages, dict) else None
        raise FormError(N_("Please check this entry."), str(part) if part else None) from None
    return schemas.definition_from(loaded)


def _version(value: str | None) -> int:
    if not value or not value.isdecimal() or len(value) > 9:
        raise FormError(N_("Please choose a text version."), "consent_versions")
    return int(value)


# Where a refusal of the service shows: a field of the editor, or a group of fields.
_ERROR_PLACE = {
    "name": "name",
    "kind": "kind",
    "allowed_origins": "allowed_origins",
    "redirect_url": "redirect_url",
    "follow_up_fields": "follow_up_fields",
    "asset": "asset",
    "title": "title_en",
    "intro": "intro_en",
    "thank_you": "thank_you_en",
    "fields": "fields",
    "purposes": "purposes",
    "consent_versions": "purposes",
}


def show_refusal(editor: FlaskForm, exc: FormError, groups: dict[str, list[str]]) -> None:
    """Put the service's message next to the field (or group) it is about."""
    message = exc.translated(i18n.current_language())
    place = _ERROR_PLACE.get(exc.field or "", "")
    if place in editor._fields:
        editor._fields[place].errors = [*editor._fields[place].errors, message]
    else:
        groups.setdefault(place or "form", []).append(message)
