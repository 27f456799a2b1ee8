"""Reading an import file: its columns mapped to a lead's fields, its lines read.

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

Each line's values are checked as a contact by ``export.import_contact``, with the
capture forms' checks: what an import stores is what a form would accept.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

from capture.definitions import PROFILE_FIELDS
from export.import_report import Note
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest

ATTRIBUTES = PROFILE_FIELDS  # what a line may hold besides the address: a form's profile fields
PROOF = ("optin_at", "optin_source", "optin_text")
FIELDS = ("email", "name", *ATTRIBUTES, "language", "status", *PROOF)


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
