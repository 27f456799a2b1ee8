"""One line of an import file as a contact: its mapped values checked as a form
submission's would be (``capture.submission_checks.text_problem``, the same lengths),
a country name made its code, a name split, and the proof of consent (``optin_at``,
``optin_source``, ``optin_text``) taken only when complete.

Which column feeds which field is ``export.import_mapping``'s; a refused line is a
:class:`LineProblem` whose note the import's report shows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from capture.service import COMPANY_SIZES
from capture.submission_checks import text_problem
from export.import_mapping import ATTRIBUTES, PROOF, ColumnMap
from export.import_report import Note
from leadvault import i18n
from leadvault.i18n import N_

_MAX = {
    "first_name": 100,
    "last_name": 100,
    "company": 200,
    "job_title": 150,
    "phone": 40,
    "optin_source": 150,
    "optin_text": 4000,
}
# Source states that mean "do not contact": such lines are refused.
_BLOCKED = {"blocklisted", "blacklisted", "unsubscribed", "true", "yes", "1"}


class LineProblem(Exception):
    """This line is refused; ``note`` (a message id with values, no personal data) says
    why, ``str`` in English."""

    def __init__(self, message: str, **values: object) -> None:
        self.note = Note.of(message, **values)
        super().__init__(str(self.note))


TOO_LONG = N_("%(field)s: longer than %(max)s characters")


@dataclasses.dataclass(frozen=True)
class Proof:
    opted_in_at: dt.datetime
    source: str
    text: str


@dataclasses.dataclass(frozen=True)
class Contact:
    email: str
    attributes: dict[str, str]
    language: str | None
    proof: Proof | None
    # Why there is no proof although some proof columns were given (for the report).
    proof_missing: Note | None = None


@functools.cache
def _countries() -> dict[str, str]:
    from babel import Locale

    names: dict[str, str] = {}
    for lang in i18n.LANGUAGES:
        for code, name in Locale(lang).territories.items():
            if len(code) == 2 and code.isalpha():
                names[name.casefold()] = code
    return names


def _country(value: str) -> str:
    if len(value) == 2 and value.isalpha():
        return value.upper()
    code = _countries().get(value.casefold())
    if code is None:
        raise LineProblem(N_("country: not a country name or two-letter code"))
    return code


_DATE_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y")


def parse_time(value: str, zone: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """ISO 8601 (what the three tools export) or a German/US date; naive means ``zone``."""
    raw = value.strip()
    moment: dt.datetime | None = None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        for pattern in _DATE_FORMATS:
            try:
                moment = dt.datetime.strptime(raw, pattern)
                break
            except ValueError:
                continue
    if moment is None:
        raise LineProblem(N_("optin_at: not a date and time (use e.g. 2024-03-01T09:30:00Z)"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    moment = moment.astimezone(dt.UTC)
    if moment > now + dt.timedelta(minutes=5):
        raise LineProblem(N_("optin_at: lies in the future"))
    if moment.year < 1990:
        raise LineProblem(N_("optin_at: before 1990"))
    return moment


def contact(
    values: Sequence[str], mapping: ColumnMap, *, zone: ZoneInfo, now: dt.datetime
) -> Contact:
    """The line's contact, checked like a form submission; LineProblem names a bad value."""
    got = {field: values[index].strip() for field, index in mapping.columns.items()}
    status = got.get("status", "").casefold()
    if status in _BLOCKED:
        raise LineProblem(N_("blocklisted or unsubscribed in the source: not imported"))
    email = got.get("email", "")
    if not email:
        raise LineProblem(N_("email: empty"))
    if len(email) > 254:
        raise LineProblem(N_("email: longer than 254 characters"))
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise LineProblem(N_("email: not a valid address")) from None
    attributes = {name: got[name] for name in ATTRIBUTES if got.get(name)}
    full = got.get("name", "")
    if full:
        first, _, last = full.partition(" ")
        attributes.setdefault("first_name", first.strip())
        if last.strip():
            attributes.setdefault("last_name", last.strip())
    for name, value in list(attributes.items()):
        if name == "country":
            attributes[name] = _country(value)
            continue
        if name == "company_size":
            if value not in COMPANY_SIZES:
                raise LineProblem(
                    N_("company_size: one of %(known)s"), known=", ".join(COMPANY_SIZES)
                )
            continue
        _text(name, value)
    language = got.get("language", "").replace("-", "_").partition("_")[0].lower() or None
    if language not in i18n.LANGUAGES:
        language = None
    proof, missing = _proof(got, zone=zone, now=now)
    return Contact(email, attributes, language, proof, missing)


def _text(name: str, value: str) -> None:
    limit = _MAX.get(name)
    if limit is not None and len(value) > limit:
        raise LineProblem(TOO_LONG, field=name, max=limit)
    problem = text_problem(name, value)
    if problem is not None:
        # The capture check's message, translated with it.
        raise LineProblem(N_("%(field)s: %(problem)s"), field=name, problem=Note(problem))


def _proof(
    got: Mapping[str, str], *, zone: ZoneInfo, now: dt.datetime
) -> tuple[Proof | None, Note | None]:
    given = {name: got.get(name, "") for name in PROOF}
    if not any(given.values()):
        return None, None
    absent = [name for name, value in given.items() if not value]
    if absent:
        return None, Note.of(
            N_("no complete proof of consent (%(fields)s empty)"), fields=", ".join(absent)
        )
    when = parse_time(given["optin_at"], zone, now)
    _text("optin_source", given["optin_source"])
    if len(given["optin_text"]) > _MAX["optin_text"]:
        raise LineProblem(TOO_LONG, field="optin_text", max=_MAX["optin_text"])
    return Proof(when, given["optin_source"], given["optin_text"]), None
