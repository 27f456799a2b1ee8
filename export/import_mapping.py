"""Reading an import file: its columns mapped to a lead's fields, each line checked.

A **preset** names the columns another tool's export uses (matched without
regard to case and spacing); ``--map COLUMN=FIELD`` adds or overrides one.
The target fields are the lead's attributes, ``email``, ``name`` (a full name,
split at its first space), ``language``, ``status`` (the source's own
blocklist or unsubscribe mark) and the three **proof** columns: ``optin_at``
(when the contact opted in), ``optin_source`` (where) and ``optin_text`` (the
consent text it agreed to). Consent is imported only when all three are there.

- **leadvault**: our own export's column keys plus the proof columns.
- **Mautic** (contact export): the field aliases (``firstname``, ``position`` …).
- **HubSpot** (contacts export): the default property labels (``First Name``,
  ``Company Name``, ``Unsubscribed from all email`` …).
- **listmonk** (subscribers export): ``uuid,email,name,attributes,status,
  created_at,updated_at``; ``blocklisted`` subscribers are refused.

Checks are those of the capture forms (``capture.submission_checks.text_problem``, the
same lengths): what an import stores is what a form would accept.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import functools
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from capture.definitions import PROFILE_FIELDS
from capture.service import COMPANY_SIZES
from capture.submission_checks import text_problem
from export.import_report import Note
from leadvault import i18n
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest

ATTRIBUTES = PROFILE_FIELDS  # what a line may hold besides the address: a form's profile fields
PROOF = ("optin_at", "optin_source", "optin_text")
FIELDS = ("email", "name", *ATTRIBUTES, "language", "status", *PROOF)
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


def _key(header: str) -> str:
    return re.sub(r"[\s_\-]+", " ", header.strip().lower())


PRESETS: dict[str, dict[str, str]] = {
    "leadvault": {
        **{name: name for name in ("email", *ATTRIBUTES, "language", *PROOF)},
        "name": "name",
    },
    "mautic": {
        "email": "email",
        "firstname": "first_name",
        "lastname": "last_name",
        "company": "company",
        "position": "job_title",
        "phone": "phone",
        "mobile": "phone",
        "country": "country",
        "preferred locale": "language",
    },
    "hubspot": {
        "email": "email",
        "first name": "first_name",
        "last name": "last_name",
        "company name": "company",
        "job title": "job_title",
        "phone number": "phone",
        "mobile phone number": "phone",
        "country/region": "country",
        "preferred language": "language",
        "unsubscribed from all email": "status",
    },
    "listmonk": {
        "email": "email",
        "name": "name",
        "status": "status",
    },
}


class MappingError(RefusedRequest):
    """The file or the mapping cannot be used at all; the message says why."""


NOT_VALID = N_("the first line is not valid %(encoding)s: give --encoding (e.g. cp1252)")


@dataclasses.dataclass(frozen=True)
class ColumnMap:
    """Which column (index) feeds which field, and what is left unused."""

    preset: str
    columns: dict[str, int]  # field -> column index
    ignored: tuple[str, ...]

    def describe(self, header: Sequence[str]) -> list[str]:
        return [f"{header[index]} -> {field}" for field, index in self.columns.items()]


def plan(header: Sequence[str], *, preset: str = "auto", overrides: Mapping[str, str]) -> ColumnMap:
    """Map the header's columns; MappingError when no email column results."""
    keys = [_key(h) for h in header]
    tables = {name: {_key(k): v for k, v in table.items()} for name, table in PRESETS.items()}
    if preset == "auto":
        preset = max(tables, key=lambda name: sum(k in tables[name] for k in keys))
    elif preset not in tables:
        raise MappingError(
            N_("preset must be one of auto, %(known)s"), field="preset", known=", ".join(PRESETS)
        )
    table = tables[preset]
    for column, field in overrides.items():
        if field not in FIELDS and field != "-":
            raise MappingError(
                N_("--map %(column)s=%(target)s: field must be one of %(known)s"),
                field="map",
                column=column,
                known=", ".join(FIELDS),
                target=field,
            )
        if _key(column) not in keys:
            raise MappingError(
                N_("--map %(column)s=%(target)s: the file has no column '%(column)s'"),
                field="map",
                column=column,
                target=field,
            )
    chosen = {_key(column): field for column, field in overrides.items()}
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, key in enumerate(keys):
        field = chosen.get(key, table.get(key))
        if field is None or field == "-" or field in columns:
            ignored.append(header[index])
            continue
        columns[field] = index
    if "email" not in columns:
        raise MappingError(
            N_("no email column: name it with --map COLUMN=email (columns: %(columns)s)"),
            columns=", ".join(header) or "none",
        )
    return ColumnMap(preset, columns, tuple(ignored))


# --- reading the file -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RawLine:
    number: int  # the physical line the record starts on (1 = header)
    values: list[str] | None
    problem: Note | None = None


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def check_encoding(encoding: str) -> str:
    """The codec's name, when it decodes bytes to text as ``read`` does (surrogateescape).
    Python also knows codecs that are no text encoding (rot13, base64, zlib) or refuse
    that error handler (idna) or every byte ("undefined"): they raised past the import."""
    try:
        codec = codecs.lookup(encoding)
        if not getattr(codec, "_is_text_encoding", True):  # CPython marks bytes-to-bytes ones
            raise LookupError(codec.name)
        # No bytes: only a codec that refuses the handler (or everything) raises.
        codec.incrementaldecoder(errors="surrogateescape").decode(b"", final=True)
        return codec.name
    except (LookupError, UnicodeError):
        raise MappingError(
            N_("unknown encoding '%(encoding)s' (e.g. utf-8, cp1252)"),
            field="encoding",
            encoding=encoding,
        ) from None


def read(source: IO[bytes], *, encoding: str = "utf-8") -> tuple[list[str], Iterator[RawLine]]:
    """The header and the lines; a line that cannot be read is a RawLine with a problem."""
    name = check_encoding(encoding)
    text = io.TextIOWrapper(
        source,
        encoding="utf-8-sig" if name == "utf-8" else name,
        errors="surrogateescape",
        newline="",
    )
    try:
        first = text.readline()
    except UnicodeDecodeError:
        # surrogateescape keeps a byte-wise codec going, not one with wider units (UTF-16,
        # UTF-32): its error escaped as a traceback.
        raise MappingError(NOT_VALID, field="encoding", encoding=name) from None
    if not first.strip():
        raise MappingError(N_("the file is empty (the first line must name the columns)"))
    delimiter = max(";,\t|", key=first.count)
    header_rows = list(csv.reader([first], delimiter=delimiter))
    header = [h.strip() for h in header_rows[0]] if header_rows else []
    if _UNDECODABLE.search(first):
        raise MappingError(NOT_VALID, field="encoding", encoding=name)
    reader = csv.reader(text, delimiter=delimiter)
    return header, _lines(reader, len(header), name)


NOT_VALID_FROM_HERE = N_("not valid %(encoding)s from here on: give --encoding")
NOT_CSV = N_("not readable as CSV (%(reason)s)")
NOT_VALID_LINE = N_("not valid %(encoding)s: give --encoding (e.g. cp1252)")
TOO_MANY = N_("%(values)s values but %(columns)s columns")


def _lines(reader: Any, width: int, encoding: str) -> Iterator[RawLine]:
    consumed = 0  # physical lines the reader has taken (the header is line 1)
    while True:
        start = consumed + 2
        try:
            values = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            # The decoder cannot resume after this (see read): the rest is one problem.
            yield RawLine(start, None, Note.of(NOT_VALID_FROM_HERE, encoding=encoding))
            return
        except csv.Error as exc:
            consumed = reader.line_num
            yield RawLine(start, None, Note.of(NOT_CSV, reason=str(exc)))
            continue
        consumed = reader.line_num
        if not any(v.strip() for v in values):
            continue  # blank line
        if any(_UNDECODABLE.search(v) for v in values):
            yield RawLine(start, None, Note.of(NOT_VALID_LINE, encoding=encoding))
            continue
        if len(values) > width and any(v.strip() for v in values[width:]):
            yield RawLine(start, None, Note.of(TOO_MANY, values=len(values), columns=width))
            continue
        yield RawLine(start, [*values[:width], *[""] * (width - len(values))])


# --- one line's values ---------------------------------------------------------------


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
