"""The checks of a submission against its form, with messages in the visitor's language.

The public endpoint's validation: the form's schema (built per form and language, kept),
a path without marshmallow for a submission whose every value plainly passes, and the
address checked once (its normal form also gives the blind index).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from capture.models import Form
from capture.queueing import ValidSubmission
from capture.service import COMPANY_SIZES, SOURCE_KEYS
from leadvault import addresses, i18n, profile
from leadvault.i18n import N_

# Keys a submission may carry besides the form's declared fields.
CONTROL_KEYS = {"email", "consent", "lang", "render_token", "website", "altcha", *SOURCE_KEYS}
HONEYPOT = "website"

# A profile field's rules are the core's (leadvault.profile): the preference
# center's correction checks the same; imports and widgets read them here.
_MAX = profile.MAX_LENGTH
text_problem = profile.text_problem


def _text_check(name: str, lang: str) -> Any:
    def check(value: str) -> None:
        problem = text_problem(name, value)
        if problem is not None:
            raise ValidationError(i18n.translate(lang, problem))

    return check


def _string(
    lang: str, name: str, *, required: bool, max_length: int, **options: Any
) -> fields.String:
    return fields.String(
        required=required,
        **options,
        validate=[
            validate.Length(
                max=max_length,
                error=i18n.translate(
                    lang, "Please use at most %(max)s characters.", max=max_length
                ),
            ),
            _text_check(name, lang),
        ],
        error_messages={
            "required": i18n.translate(lang, "Please fill in this field."),
            "invalid": i18n.translate(lang, "Please enter text here."),
            "null": i18n.translate(lang, "Please fill in this field."),
        },
    )


EMAIL_MAX = 254
SOURCE_MAX = 2000
CONSENT_MAX = 40  # a purpose's name, as the schema's consent list measures it
CONSENT_SHAPE = N_(
    "Please send consent as the names of the purposes agreed to, as text: in a form, one "
    '"consent" value per purpose; in JSON, a list like ["newsletter"].'
)


def _checked_email(value: str, *, check_deliverability: bool) -> ValidatedEmail | None:
    try:
        return validate_email(value, check_deliverability=check_deliverability)
    except EmailNotValidError:
        return None


def _normal_form(value: str, *, check_deliverability: bool) -> str | None:
    """``_checked_email(value).normalized``, or None when it is no address.

    An address with a dot-atom local part takes the cheaper check in two parts
    (``addresses.dot_atom_form``, with email-validator's default of a globally
    deliverable domain, as here); anything else, an address it refuses and any check of
    deliverability (DNS) take the whole check."""
    if not check_deliverability:
        normal = addresses.dot_atom_form(value, globally_deliverable=True)
        if normal is not None:
            return normal
    checked = _checked_email(value, check_deliverability=check_deliverability)
    return checked.normalized if checked is not None else None


def build_schema(form: Form, lang: str, *, check_deliverability: bool) -> Schema:
    """The submission's schema; the address is only typed and measured here (see
    :func:`validate_submission`, which checks it once and keeps the result)."""
    declared: dict[str, fields.Field] = {
        "email": fields.String(
            required=True,
            validate=[
                validate.Length(
                    max=EMAIL_MAX,
                    error=i18n.translate(
                        lang, "Please use at most %(max)s characters.", max=EMAIL_MAX
                    ),
                ),
            ],
            error_messages={
                "required": i18n.translate(lang, "Please enter your email address."),
                "invalid": i18n.translate(
                    lang, "Please enter a valid email address, like name@example.com."
                ),
                "null": i18n.translate(lang, "Please enter your email address."),
            },
        )
    }
    for spec in form.fields:
        name = spec["name"]
        if name == "company_size":
            declared[name] = fields.String(
                required=spec["required"],
                validate=validate.OneOf(
                    COMPANY_SIZES, error=i18n.translate(lang, "Please choose one of the options.")
                ),
                error_messages={
                    "required": i18n.translate(lang, "Please fill in this field."),
                    "invalid": i18n.translate(lang, "Please enter text here."),
                },
            )
        else:
            declared[name] = _string(lang, name, required=spec["required"], max_length=_MAX[name])
    for key in SOURCE_KEYS:
        declared[key] = _string(lang, key, required=False, max_length=SOURCE_MAX, load_default=None)
    # consent is always a list here (validate_submission wraps a single value); what can
    # be wrong is an item that is no purpose name (true, {"a": 1}, null in JSON).
    consent_shape = i18n.translate(lang, CONSENT_SHAPE)
    declared["consent"] = fields.List(
        fields.String(
            validate=validate.Length(
                max=CONSENT_MAX,
                error=i18n.translate(lang, "This form does not ask for this consent."),
            ),
            error_messages={"invalid": consent_shape, "null": consent_shape},
        ),
        load_default=list,
    )
    schema_class = Schema.from_dict(declared, name="SubmissionSchema")
    return schema_class(unknown=RAISE)


@functools.lru_cache(maxsize=512)
def _cached_schema(public_id: str, fields_json: str, lang: str, check: bool) -> Schema:
    """Building a schema costs more than using it; a form's fields key the cache."""
    stand_in = Form(public_id=public_id, fields=json.loads(fields_json))
    return build_schema(stand_in, lang, check_deliverability=check)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def validate_submission(
    form: Form, raw: Mapping[str, Any], lang: str, *, check_deliverability: bool
) -> tuple[ValidSubmission | None, dict[str, str]]:
    """Return the cleaned submission, or field → message errors (422)."""
    errors: dict[str, str] = {}
    declared_fields = {spec["name"] for spec in form.fields}
    payload: dict[str, Any] = {}
    for key, value in raw.items():
        if key in {"lang", "render_token", HONEYPOT, "altcha"}:
            continue
        if key not in CONTROL_KEYS and key not in declared_fields:
            errors[key] = i18n.translate(lang, "This form has no such field.")
            continue
        if key == "consent":
            payload[key] = _as_list(value)
            continue
        cleaned = value.strip() if isinstance(value, str) else value
        if cleaned == "":
            continue  # an empty optional input is "not given"
        payload[key] = cleaned
    loaded = _load_plain(form, payload)
    if loaded is None:  # something to refuse (or to look at closer): the schema decides
        schema = _cached_schema(
            form.public_id, json.dumps(form.fields, sort_keys=True), lang, check_deliverability
        )
        try:
            loaded = schema.load(payload)
        except ValidationError as exc:
            for key, messages in exc.normalized_messages().items():
                errors.setdefault(str(key), _first(messages))
            loaded = None
    # The address is checked here, once, not by a validator in the schema: the result's
    # normal form also gives the blind index (checking an address costs more than the
    # rest of the schema). Only a string the schema let through is checked, as before.
    email = payload.get("email")
    checked = None
    if "email" not in errors and isinstance(email, str) and len(email) <= EMAIL_MAX:
        checked = _normal_form(email, check_deliverability=check_deliverability)
        if checked is None:
            errors["email"] = i18n.translate(
                lang, "Please enter a valid email address, like name@example.com."
            )
            loaded = None
    asked = {spec["purpose"]: spec["required"] for spec in form.purposes}
    chosen = [p for p in (loaded or {}).get("consent", []) if p in asked]
    if loaded is not None:
        unknown_purposes = [p for p in loaded.get("consent", []) if p not in asked]
        if unknown_purposes:
            errors["consent"] = i18n.translate(lang, "This form does not ask for this consent.")
    for purpose, required in asked.items():
        if required and purpose not in chosen and loaded is not None:
            errors[f"consent.{purpose}"] = i18n.translate(lang, "Please agree to this to continue.")
    if loaded is not None and not chosen and "consent" not in errors:
        errors["consent"] = i18n.translate(lang, "Please choose at least one option.")
    country = (loaded or {}).get("country")
    if country and not (len(country) == 2 and country.isalpha()):
        errors["country"] = i18n.translate(
            lang, "Please use the two-letter country code, like DE or GB."
        )
    if errors or loaded is None:
        return None, errors
    return (
        ValidSubmission(
            email=loaded["email"],
            # What addresses.index_form gives for it: the same normal form, lower-cased.
            email_index_form=checked.lower() if checked is not None else None,
            profile={k: loaded[k] for k in declared_fields if k != "message" and loaded.get(k)},
            message=loaded.get("message"),
            purposes=list(dict.fromkeys(chosen)),
            source={k: loaded[k] for k in SOURCE_KEYS if loaded.get(k)},
        ),
        {},
    )


def _load_plain(form: Form, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """What :func:`build_schema`'s ``load`` gives for ``payload`` when every value
    plainly passes its field's checks (the common submission, without marshmallow's
    machinery: a tenth of a submission's CPU); None when anything might not, and the
    schema decides, with its messages. Checks as the schema does: strings only, the
    same lengths, options and text checks; required fields present; None only where
    the schema allows it (the source keys, whose default it is)."""
    email = payload.get("email")
    if not isinstance(email, str) or len(email) > EMAIL_MAX:
        return None
    specs = {spec["name"]: spec for spec in form.fields}
    loaded: dict[str, Any] = dict.fromkeys(SOURCE_KEYS)
    loaded["email"] = email
    loaded["consent"] = []
    for key, value in payload.items():
        if key == "email":
            continue
        if key == "consent":
            if not isinstance(value, list) or not all(
                isinstance(purpose, str) and len(purpose) <= CONSENT_MAX for purpose in value
            ):
                return None
            loaded[key] = list(value)
        elif key in SOURCE_KEYS:  # the schema's source field, should a form field share it
            if value is not None and not (
                isinstance(value, str)
                and len(value) <= SOURCE_MAX
                and text_problem(key, value) is None
            ):
                return None
            loaded[key] = value
        elif key in specs and isinstance(value, str):
            if key == "company_size":
                if value not in COMPANY_SIZES:
                    return None
            elif len(value) > _MAX[key] or text_problem(key, value) is not None:
                return None
            loaded[key] = value
        else:
            return None
    if any(spec["required"] and name not in loaded for name, spec in specs.items()):
        return None
    return loaded


def _first(messages: Any) -> str:
    if isinstance(messages, list) and messages:
        return _first(messages[0])
    if isinstance(messages, dict) and messages:
        return _first(next(iter(messages.values())))
    return str(messages)
