"""CSV rows straight from the driver's rows (export.direct): the same bytes as the rows
written from records (export.rows.records), for every plain column and kind of value,
on both databases."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import sqlalchemy as sa

from consent import service as consent_service
from export import columns, direct, rows, service, writers
from leadvault.app import runtime
from leadvault.db import read_only, vault_of
from scoring.models import LeadScore
from tests.test_exports import INJECTION, people  # noqa: F401 (fixture)
from tests.test_scoring import META, contact_form, new_lead, uow

_PLAIN = [c for c in columns.FIXED.values() if c.source != columns.Source.SUBMISSION]


@pytest.fixture
def varied(app, people):  # noqa: F811 (the fixture imported above)
    """The three people plus leads whose scoring states and consents differ: none, a
    formula in a UTM value, a suspect one, a pending consent."""
    form_id = contact_form(app)
    pending = new_lead(app, form_id, "@pending@example.org", profile={"company": "\tTab"})
    with uow(app) as s:
        s.execute(sa.delete(LeadScore).where(LeadScore.lead_id == people["nora"]))
        s.execute(
            sa.update(LeadScore)
            .where(LeadScore.lead_id == people["jurgen"])
            .values(
                stage="mql",
                fit_grade="B",
                fit_points=3.14159,
                utm_source=INJECTION,
                utm_campaign="-x",
            )
        )
        s.execute(
            sa.update(LeadScore)
            .where(LeadScore.lead_id == people["mallory"])
            .values(suspect=True, fit_points=1e-7, first_form="=form")
        )
        consent_service.withdraw(s, people["jurgen"], ["sales_contact"], meta=META)
    return {**people, "pending": pending}


def _both_ways(app, spec: str, dialect: str) -> tuple[list[bytes], list[bytes]]:
    """Each chunk (of two leads) written straight from its rows and from its records."""
    selection, _words = service.selection()
    with app.app_context(), read_only(runtime(app).session_factory) as s:
        export = service.prepare(s, format="csv", columns=spec, dialect=dialect)
        context, chunks = rows.read(
            s, selection, export.columns, chunk_size=2, text_dates=export.prints_dates_only
        )
        vault = vault_of(s)
        assert direct.applies(export.fields, context)
        straight = direct.csv_encoder(export.fields, context, vault, dialect=dialect)
        from_records = writers.csv_encoder(export.fields, dialect=dialect)
        ways: tuple[list[bytes], list[bytes]] = ([], [])
        for chunk in chunks:
            count, piece = straight(chunk)
            assert count == len(chunk.leads)
            ways[0].append(piece)
            ways[1].append(from_records(rows.records(chunk, context, vault)))
    return ways


@pytest.mark.parametrize("dialect", ["excel", "excel-de"])
@pytest.mark.parametrize(
    "spec",
    [
        ",".join(c.key for c in _PLAIN) + ",consent",
        "consent.newsletter.version,score,company,id",  # no address, a field alone
        "stage,created_at,consent.sales_contact",  # nothing to decrypt
    ],
)
def test_rows_from_the_driver_are_the_rows_from_records(app, varied, spec, dialect):
    straight, from_records = _both_ways(app, spec, dialect)
    assert len(straight) == 2 and straight == from_records
    text = b"".join(straight).decode("utf-8")
    if spec.startswith("id,"):
        assert "'" + INJECTION.replace('"', '""') in text and "'\tTab" in text
        assert (";3,1;" if dialect == "excel-de" else ",3.1,") in text  # fit points


def test_an_export_writes_the_same_file_either_way(app, varied, monkeypatch):
    """The whole file through ``service.write`` (the way the CLI writes it) with and
    without the direct rows."""
    spec = ",".join(c.key for c in _PLAIN) + ",consent"
    selection, _words = service.selection(created_from=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))

    def export() -> bytes:
        with app.app_context(), read_only(runtime(app).session_factory) as s:
            plan = service.prepare(s, format="csv", columns=spec)
            buffer = io.BytesIO()
            service.write(s, selection, plan, buffer, chunk_size=3)
        return buffer.getvalue()

    straight = export()
    monkeypatch.setattr(direct, "applies", lambda fields, context: False)
    assert export() == straight
    assert straight.count(b"\r\n") == 5  # the header and four leads


@pytest.mark.parametrize("dialect", ["excel", "excel-de"])
def test_joined_lines_are_what_the_csv_module_writes(dialect):
    """writers.csv_lines with a width joins the cells itself when none needs quoting,
    and leaves the rest to the csv module: the same bytes over rows of every kind of
    cell (delimiters, quotes, line breaks, umlauts, empty cells)."""
    import random

    pieces = ["a", "Jürgen", "", " ", ",", ";", '"', "\r", "\n", "\r\n", "'=1", "3,5", "x y"]
    rng = random.Random(14)
    with_module = writers.csv_lines(dialect)
    for width in (2, 3, 24):
        joined = writers.csv_lines(dialect, width)
        plain = [["".join(rng.choices(["a", "Jürgen", "'=1", "x y"], k=3)) for _ in range(width)]]
        assert joined(plain) == with_module(plain) and b'"' not in joined(plain)
        for _ in range(300):
            rows_ = [
                ["".join(rng.choices(pieces, k=rng.randrange(3))) for _ in range(width)]
                for _ in range(rng.randrange(4))
            ]
            assert joined(rows_) == with_module(rows_), rows_
