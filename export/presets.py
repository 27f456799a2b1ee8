"""CRM presets: the column names and value formats each import wizard expects.

A preset exports only leads that granted the purpose allowing the transfer
(``sales_contact``: a CRM is for contacting people), and says so in every row
("Leadvault consent" column / ``leadvault_consent``) and in the XLSX "About"
sheet, so whoever imports the file knows on what ground it holds the data.

- **HubSpot** (contacts import): the default contact property labels, which the
  import wizard maps by name, the lifecycle stage as its internal value
  (``marketingqualifiedlead`` …) and the GDPR legal basis.
- **Salesforce** (Data Import Wizard, Leads): the Lead field labels; ``Last
  Name`` and ``Company`` are required, filled with ``[not provided]`` like
  Web-to-Lead does; ``Lead Source`` Web, ``Rating`` from the grade.
- **Pipedrive** (spreadsheet import, leads): ``Lead - Title`` plus the person
  and organisation fields in Pipedrive's "Object - Field" naming.
- **Mautic** (contact import): the contact field aliases (``firstname``,
  ``position``, ``points``, ``tags`` …) that the import matches automatically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from export.columns import FIXED, Column, Kind, consent_columns
from export.fields import Field
from export.rows import Record

SALES_PURPOSE = "sales_contact"
_NOT_PROVIDED = "[not provided]"


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    title: str
    purpose: str
    fields: tuple[Field, ...]

    def columns(self) -> list[Column]:
        """What to read for it: the base columns the fields draw on."""
        return [*_BASE, *consent_columns(self.purpose)]

    def about(self, *, rows: int, filters: str) -> list[str]:
        return [
            f"Leadvault export for {self.title}.",
            f"Only leads that granted the purpose {self.purpose!r} are included "
            "(the column 'Leadvault consent' holds the date and consent text version).",
            f"Leads: {rows}. Filter: {filters or 'none'}.",
        ]


_BASE = [
    FIXED[key]
    for key in (
        "id",
        "email",
        "first_name",
        "last_name",
        "company",
        "job_title",
        "phone",
        "country",
        "company_size",
        "language",
        "created_at",
        "stage",
        "grade",
        "score",
        "form",
        "utm_source",
        "utm_campaign",
    )
]


def _attr(name: str) -> Callable[[Record], str | None]:
    return lambda record: record.get(name)


def _score_part(name: str) -> Callable[[Record], object]:
    return lambda record: record["scores"].get(name)


def _consent_line(purpose: str) -> Callable[[Record], str]:
    def line(record: Record) -> str:
        state = record["consents"].get(purpose)
        if state is None or state.date is None:
            return f"{purpose}: granted"
        when = state.date.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{purpose} granted {when}, consent text v{state.version}"

    return line


def _name(record: Record) -> str:
    parts = [record.get("first_name"), record.get("last_name")]
    return " ".join(p for p in parts if p) or (record.get("email") or "")


def _lead_title(record: Record) -> str:
    company = record.get("company")
    return f"{_name(record)} ({company})" if company else _name(record)


def _summary(record: Record) -> str:
    scores = record["scores"]
    bits = [
        f"stage {scores.get('stage', 'new')}",
        f"grade {scores.get('fit_grade', '-')}",
        f"score {scores.get('score', 0)}",
    ]
    if scores.get("utm_source"):
        bits.append(f"source {scores['utm_source']}/{scores.get('utm_campaign') or '-'}")
    return "Leadvault: " + ", ".join(bits)


_HUBSPOT_STAGE = {
    "new": "lead",
    "mql": "marketingqualifiedlead",
    "sal": "salesqualifiedlead",
    "sql": "salesqualifiedlead",
    "won": "customer",
    "lost": "other",
    "recycled": "lead",
    "disqualified": "other",
}
_SALESFORCE_STATUS = {
    "won": "Closed - Converted",
    "lost": "Closed - Not Converted",
    "disqualified": "Closed - Not Converted",
    "sal": "Working - Contacted",
    "sql": "Working - Contacted",
}
_RATING = {"A": "Hot", "B": "Warm", "C": "Cold", "D": "Cold"}


def _stage(mapping: dict[str, str], default: str) -> Callable[[Record], str]:
    return lambda record: mapping.get(record["scores"].get("stage", "new"), default)


def _created(record: Record) -> str:
    created = record.get("created_at")
    return created.astimezone(dt.UTC).strftime("%Y-%m-%d") if created else ""


def _text(header: str, get: Callable[[Record], object]) -> Field:
    return Field(header, Kind.TEXT, get)


def _label(header: str, get: Callable[[Record], object]) -> Field:
    return Field(header, Kind.LABEL, get)


def _hubspot() -> Preset:
    return Preset(
        "hubspot",
        "HubSpot (contacts import)",
        SALES_PURPOSE,
        (
            _text("Email", _attr("email")),
            _text("First Name", _attr("first_name")),
            _text("Last Name", _attr("last_name")),
            _text("Company Name", _attr("company")),
            _text("Job Title", _attr("job_title")),
            _text("Phone Number", _attr("phone")),
            _text("Country/Region", _attr("country")),
            _label("Lifecycle Stage", _stage(_HUBSPOT_STAGE, "lead")),
            _label("Preferred language", _attr("language")),
            _label(
                "Legal basis for processing contact's data",
                lambda _r: "Freely given consent from contact",
            ),
            _text("Original Source Drill-Down 1", _score_part("utm_source")),
            _text("Original Source Drill-Down 2", _score_part("utm_campaign")),
            Field("Leadvault Score", Kind.NUMBER, _score_part("score")),
            _label("Leadvault Grade", _score_part("fit_grade")),
            _label("Leadvault ID", _attr("id")),
            _label("Leadvault consent", _consent_line(SALES_PURPOSE)),
        ),
    )


def _salesforce() -> Preset:
    return Preset(
        "salesforce",
        "Salesforce (Data Import Wizard, Leads)",
        SALES_PURPOSE,
        (
            _text("First Name", _attr("first_name")),
            _text("Last Name", lambda r: r.get("last_name") or _NOT_PROVIDED),
            _text("Email", _attr("email")),
            _text("Company", lambda r: r.get("company") or _NOT_PROVIDED),
            _text("Title", _attr("job_title")),
            _text("Phone", _attr("phone")),
            _text("Country", _attr("country")),
            _text("No. of Employees", _attr("company_size")),
            _label("Lead Source", lambda _r: "Web"),
            _label("Lead Status", _stage(_SALESFORCE_STATUS, "Open - Not Contacted")),
            _label("Rating", lambda r: _RATING.get(r["scores"].get("fit_grade", "D"), "Cold")),
            _text("Description", lambda r: f"{_summary(r)}; {_consent_line(SALES_PURPOSE)(r)}"),
            _label("Leadvault consent", _consent_line(SALES_PURPOSE)),
        ),
    )


def _pipedrive() -> Preset:
    return Preset(
        "pipedrive",
        "Pipedrive (spreadsheet import, leads)",
        SALES_PURPOSE,
        (
            _text("Lead - Title", _lead_title),
            _text("Person - Name", _name),
            _text("Person - Email", _attr("email")),
            _text("Person - Phone", _attr("phone")),
            _text("Organization - Name", _attr("company")),
            _text("Note - Content", lambda r: f"{_summary(r)}; {_consent_line(SALES_PURPOSE)(r)}"),
            _label("Leadvault consent", _consent_line(SALES_PURPOSE)),
        ),
    )


def _mautic() -> Preset:
    return Preset(
        "mautic",
        "Mautic (contact import)",
        SALES_PURPOSE,
        (
            _text("email", _attr("email")),
            _text("firstname", _attr("first_name")),
            _text("lastname", _attr("last_name")),
            _text("company", _attr("company")),
            _text("position", _attr("job_title")),
            _text("phone", _attr("phone")),
            _text("country", _attr("country")),
            _label("preferred_locale", _attr("language")),
            Field("points", Kind.NUMBER, lambda r: round(r["scores"].get("score") or 0)),
            _label(
                "tags",
                lambda r: ",".join(
                    t
                    for t in (
                        "leadvault",
                        f"stage-{r['scores'].get('stage', 'new')}",
                        f"grade-{r['scores'].get('fit_grade', 'D')}",
                    )
                ),
            ),
            _label("dateAdded", _created),
            _label("leadvault_consent", _consent_line(SALES_PURPOSE)),
        ),
    )


PRESETS: dict[str, Callable[[], Preset]] = {
    "hubspot": _hubspot,
    "salesforce": _salesforce,
    "pipedrive": _pipedrive,
    "mautic": _mautic,
}


def get(name: str) -> Preset:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
