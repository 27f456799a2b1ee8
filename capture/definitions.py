"""What a form definition is: the fields a form may declare, the specs of its fields and
purposes, the limits of its texts, and the refusals of a definition.

The checks are in ``capture.definition_checks``, the service functions that create,
edit, archive and delete forms in ``capture.definition_service``, a form's allowed
origins in ``capture.origins``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from capture.models import FormKind
from leadvault.refusals import RefusedRequest

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


class FormError(RefusedRequest):
    """A form definition the service refuses; ``field`` names the part of the
    definition it is about (given second, without its keyword, by the checks)."""

    def __init__(self, message: str, field: str | None = None, **values: object) -> None:
        super().__init__(message, field=field, **values)


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
