"""Imports: `leadvault import` with presets, dry run, suppression, merging by blind
index, consent only with proof, re-permission mails rate-limited through the outbox."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from consent import ledger
from consent import service as consent_service
from consent.models import Consent, ConsentStatus, ConsentText, OptInRequest
from consent.rights import erase_by_email
from export import import_consent, imports
from export.models import ImportPermission
from leadvault import clock, leads
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.models import Lead, OutboxMessage
from tests import factories
from tests.conftest import deliver
from tests.factories import uow
from tests.test_double_optin import CSRF, confirm_link, path_of

PROOF_TEXT = "Yes, send me the monthly newsletter. I can unsubscribe at any time."


def csv_bytes(rows: list[list[str]], *, delimiter: str = ",", bom: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def run_import(app, data: bytes, **kwargs) -> imports.Report:
    kwargs.setdefault("purposes", ["newsletter"])
    kwargs.setdefault("actor", "cli:tester")
    with app.app_context():
        return imports.run(runtime(app).session_factory, io.BytesIO(data), **kwargs)


def lead_count(app) -> int:
    with uow(app) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Lead))


def state_of(app, email: str, purpose: str = "newsletter") -> str | None:
    with uow(app) as s:
        lead = leads.find_by_email(s, email)
        if lead is None:
            return None
        row = consent_service.states(s, lead.id).get(purpose)
        return row.status if row else ConsentStatus.NONE


HEADER = [
    "email",
    "first_name",
    "last_name",
    "company",
    "country",
    "optin_at",
    "optin_source",
    "optin_text",
]
BAD_KINDS = [
    (
        lambda i: [f"broken{i}.example.org", "Bad", "", "", "", "", "", ""],
        "email: not a valid address",
    ),
    (
        lambda i: [f"link{i}@example.org", "www.spam.example", "", "", "", "", "", ""],
        "first_name: Please leave web addresses out",
    ),
    (
        lambda i: [f"date{i}@example.org", "Dora", "", "", "", "last tuesday", "web", PROOF_TEXT],
        "optin_at: not a date",
    ),
    (
        lambda i: [f"land{i}@example.org", "Lan", "", "", "Atlantis", "", "", ""],
        "country: not a country",
    ),
    (
        lambda i: [f"wide{i}@example.org", "W", "", "", "", "", "", "", "extra"],
        "9 values but 8 columns",
    ),
]


def big_file(count: int, bad_every: int, seed: int = 7) -> tuple[bytes, dict[int, str], int, int]:
    """``count`` data lines; every ``bad_every``-th is bad; two in three good ones carry proof.
    Returns the file, {line number: expected problem}, and the good lines with and without proof."""
    rng = random.Random(seed)
    rows: list[list[str]] = [HEADER]
    bad: dict[int, str] = {}
    proof = plain = 0
    for i in range(count):
        line = i + 2
        if i % bad_every == bad_every - 1:
            make, problem = BAD_KINDS[(i // bad_every) % len(BAD_KINDS)]
            rows.append(make(i))
            bad[line] = problem
            continue
        email = f"contact{i}@firma{i % 97}.example"
        first = rng.choice(["Jürgen", "Ana", "Zoë", "Ōta", "Lena"])
        if i % 3:
            when = (dt.datetime(2021, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i)).isoformat()
            rows.append(
                [email, first, "Müller", "Bäckerei Größe", "DE", when, "old form", PROOF_TEXT]
            )
            proof += 1
        else:
            rows.append([email, first, "Smith", "", "Germany", "", "", ""])
            plain += 1
    return csv_bytes(rows), bad, proof, plain


def test_ten_thousand_lines_one_percent_bad_dry_run_then_real(app):
    data, bad, proof, plain = big_file(10_000, 100)
    assert len(bad) == 100
    before = lead_count(app)

    seen: list[imports.LineResult] = []
    dry = run_import(app, data, dry_run=True, on_line=seen.append)
    assert dry.lines == 10_000
    assert {r.line: r.detail for r in dry.refused_lines}.keys() == bad.keys()
    for result in dry.refused_lines:
        assert bad[result.line] in result.detail, result
    assert (dry.created, dry.merged, dry.refused) == (proof + plain, 0, 100)
    assert (dry.consent_imported, dry.repermission) == (proof, plain)
    assert len(seen) == 10_000
    assert [r.line for r in seen] == list(range(2, 10_002))
    assert lead_count(app) == before  # nothing stored
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ImportPermission)) == 0

    real = run_import(app, data)
    assert (real.created, real.merged, real.refused) == (proof + plain, 0, 100)
    assert [r.line for r in real.refused_lines] == sorted(bad)
    assert lead_count(app) == before + proof + plain
    with uow(app) as s:
        granted = s.scalar(
            sa.select(sa.func.count()).where(
                Consent.purpose == "newsletter", Consent.status == ConsentStatus.GRANTED
            )
        )
        assert granted == proof
        texts = list(s.scalars(sa.select(ConsentText).where(ConsentText.language == "imported")))
        assert [(t.purpose, t.text) for t in texts] == [("newsletter", PROOF_TEXT)]
        assert s.scalar(sa.select(sa.func.count()).select_from(ImportPermission)) == plain
        assert ledger.verify(s).ok


def test_proof_grants_as_of_the_original_opt_in_and_keeps_the_text(app):
    when = "2022-05-04 10:30:00"  # naive: the instance's time zone (UTC here)
    data = csv_bytes(
        [HEADER, ["ida@example.org", "Ida", "", "", "", when, "Fair 2022, stand 4", PROOF_TEXT]]
    )
    report = run_import(app, data)
    assert report.consent_imported == 1
    with uow(app) as s:
        lead = leads.find_by_email(s, "ida@example.org")
        row = consent_service.states(s, lead.id)["newsletter"]
        assert row.status == ConsentStatus.GRANTED
        assert row.granted_at == dt.datetime(2022, 5, 4, 10, 30, tzinfo=dt.UTC)
        text = s.get(ConsentText, row.text_id)
        assert (text.language, text.text) == ("imported", PROOF_TEXT)
        [entry] = ledger.history(s, str(lead.id))
        assert entry.event == "confirmed"
        assert entry.text_sha256 == text.sha256
        assert entry.form_ref == f"import:{report.batch}"
        assert "opted in 2022-05-04T10:30:00Z" in entry.detail
        assert "Fair 2022, stand 4" in entry.detail
        # No re-permission for a proven contact, and no opt-in mail either.
        assert s.get(ImportPermission, lead.id) is None
        assert s.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0


def test_incomplete_proof_means_re_permission(app):
    data = csv_bytes(
        [HEADER, ["half@example.org", "Hal", "", "", "", "2022-05-04", "", PROOF_TEXT]]
    )
    report = run_import(app, data)
    assert (report.consent_imported, report.repermission) == (0, 1)
    with uow(app) as s:
        lead = leads.find_by_email(s, "half@example.org")
        assert s.get(ImportPermission, lead.id).purposes == ["newsletter"]
    assert state_of(app, "half@example.org") == ConsentStatus.NONE


def test_suppressed_addresses_are_refused(app):
    email = "gone@example.org"
    factories.lead(app, email)
    with uow(app) as s:
        assert erase_by_email(s, email)
    data = csv_bytes(
        [
            HEADER,
            ["GONE@example.org", "Back", "", "", "", "2020-01-01", "web", PROOF_TEXT],
            ["new@example.org", "New", "", "", "", "", "", ""],
        ]
    )
    report = run_import(app, data)
    assert [(r.line, r.outcome) for r in report.refused_lines] == [(2, "refused")]
    assert "suppressed" in report.refused_lines[0].detail
    assert report.created == 1
    with uow(app) as s:
        assert leads.find_by_email(s, email) is None


def test_known_addresses_merge_without_overwriting_or_reviving_consent(app):
    known = factories.lead(
        app, "known@example.org", profile={"first_name": "Ada"}, purposes=("newsletter",)
    )
    withdrawn = factories.lead(app, "left@example.org", purposes=("newsletter",))
    with uow(app) as s:
        consent_service.withdraw(s, withdrawn, ["newsletter"], meta=ledger.RequestMeta())
    data = csv_bytes(
        [
            HEADER,
            ["known@example.org", "Adelheid", "Lovelace", "", "GB", "", "", ""],
            ["left@example.org", "Lefty", "", "", "", "2020-01-01", "web", PROOF_TEXT],
            ["twice@example.org", "One", "", "", "", "", "", ""],
            ["Twice@Example.org", "", "Two", "ACME", "", "2020-02-02", "fair", PROOF_TEXT],
        ]
    )
    report = run_import(app, data)
    by_line = {r.line: r for r in report_lines(app, data)}
    assert (report.created, report.merged) == (1, 3)
    assert by_line[2].consent == "consent already given"
    assert "withdrawn earlier, not imported: newsletter" in by_line[3].consent
    assert by_line[5].detail.startswith("same address as line 4")
    with uow(app) as s:
        lead = leads.get(s, known)
        assert leads.attributes_of(s, lead) == {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "country": "GB",
        }
        assert leads.attributes_of(s, leads.find_by_email(s, "twice@example.org")) == {
            "first_name": "One",
            "last_name": "Two",
            "company": "ACME",
        }
    assert state_of(app, "left@example.org") == ConsentStatus.WITHDRAWN
    # The second line brought proof: granted, and no re-permission mail any more.
    assert state_of(app, "twice@example.org") == ConsentStatus.GRANTED
    with uow(app) as s:
        twice = leads.find_by_email(s, "twice@example.org")
        assert s.get(ImportPermission, twice.id) is None


def report_lines(app, data: bytes) -> list[imports.LineResult]:
    """The outcomes a dry run gives now (after the real run: every line merges)."""
    seen: list[imports.LineResult] = []
    run_import(app, data, dry_run=True, on_line=seen.append)
    return seen


def test_dry_run_reports_duplicates_across_chunks(app):
    rows = [HEADER] + [[f"p{i}@example.org", "", "", "", "", "", "", ""] for i in range(5)]
    rows.append(["P1@example.org", "", "", "", "", "", "", ""])
    seen: list[imports.LineResult] = []
    report = run_import(app, csv_bytes(rows), dry_run=True, chunk_size=2, on_line=seen.append)
    assert (report.created, report.merged) == (5, 1)
    assert seen[-1].detail == "same address as line 3"
    assert lead_count(app) == 0


@pytest.mark.parametrize(
    ("preset", "rows"),
    [
        (
            "mautic",
            [
                [
                    "id",
                    "firstname",
                    "lastname",
                    "email",
                    "company",
                    "position",
                    "country",
                    "preferred_locale",
                ],
                ["7", "Jürgen", "Müller", "j@example.org", "Bäckerei", "Chef", "Germany", "de_DE"],
            ],
        ),
        (
            "hubspot",
            [
                [
                    "Record ID",
                    "First Name",
                    "Last Name",
                    "Email",
                    "Company Name",
                    "Job Title",
                    "Country/Region",
                    "Unsubscribed from all email",
                ],
                [
                    "1",
                    "Jürgen",
                    "Müller",
                    "j@example.org",
                    "Bäckerei",
                    "Chef",
                    "Deutschland",
                    "false",
                ],
                ["2", "Una", "Sub", "u@example.org", "", "", "", "true"],
            ],
        ),
        (
            "listmonk",
            [
                ["uuid", "email", "name", "attributes", "status", "created_at", "updated_at"],
                [
                    "a-b",
                    "j@example.org",
                    "Jürgen Müller",
                    '{"city": "Köln"}',
                    "enabled",
                    "2020-01-01 10:00:00+00",
                    "2021-01-01",
                ],
                [
                    "c-d",
                    "u@example.org",
                    "Una Sub",
                    "{}",
                    "blocklisted",
                    "2020-01-01",
                    "2020-01-01",
                ],
            ],
        ),
    ],
)
def test_presets_map_each_tools_export(app, preset, rows):
    data = csv_bytes(rows, delimiter=";" if preset == "hubspot" else ",", bom=preset == "mautic")
    report = run_import(app, data)  # detected from the header
    assert report.preset == preset
    assert report.created == 1
    assert [r.line for r in report.refused_lines] == ([3] if len(rows) == 3 else [])
    if report.refused_lines:
        assert "blocklisted or unsubscribed" in report.refused_lines[0].detail
    with uow(app) as s:
        lead = leads.find_by_email(s, "j@example.org")
        attributes = leads.attributes_of(s, lead)
        assert attributes["first_name"] == "Jürgen"
        assert attributes["last_name"] == "Müller"
        if preset != "listmonk":
            assert attributes["company"] == "Bäckerei"
            assert attributes["job_title"] == "Chef"
            assert attributes["country"] == "DE"
        assert lead.language == ("de" if preset == "mautic" else "en")
        assert leads.find_by_email(s, "u@example.org") is None


def test_map_override_and_whole_file_problems(app):
    rows = [
        ["E-Mail", "Vorname", "Eingewilligt am", "Quelle", "Text"],
        ["x@example.org", "Xa", "01.02.2021 09:00", "Messe", PROOF_TEXT],
    ]
    with pytest.raises(imports.MappingError, match="no email column"):
        run_import(app, csv_bytes(rows))
    report = run_import(
        app,
        csv_bytes(rows, delimiter=";"),
        overrides={
            "E-Mail": "email",
            "Vorname": "first_name",
            "Eingewilligt am": "optin_at",
            "Quelle": "optin_source",
            "Text": "optin_text",
        },
    )
    assert report.consent_imported == 1
    assert state_of(app, "x@example.org") == ConsentStatus.GRANTED
    with pytest.raises(imports.ImportRefused, match="unknown purpose"):
        run_import(app, csv_bytes(rows), purposes=["spam"], overrides={"E-Mail": "email"})
    with pytest.raises(imports.MappingError, match="field must be one of"):
        run_import(app, csv_bytes(rows), overrides={"E-Mail": "password"})
    with pytest.raises(imports.MappingError, match="empty"):
        run_import(app, b"")


def test_other_encodings(app):
    rows = [HEADER, ["cp@example.org", "Jürgen", "Größe", "", "", "", "", ""]]
    text = csv_bytes(rows).decode("utf-8")
    data = text.encode("cp1252")
    report = run_import(app, data)
    assert report.refused == 1
    assert "not valid utf-8" in report.refused_lines[0].detail
    report = run_import(app, data, encoding="cp1252")
    assert report.created == 1
    with uow(app) as s:
        lead = leads.find_by_email(s, "cp@example.org")
        assert leads.attributes_of(s, lead)["last_name"] == "Größe"


def test_a_codec_with_wide_units_refuses_instead_of_a_traceback(app):
    """surrogateescape keeps a byte-wise codec going, not UTF-16 or UTF-32: a file that is
    not valid in one escaped as UnicodeDecodeError (a traceback from leadvault import)."""
    good = csv_bytes([HEADER, ["w@example.org", "W", "", "", "", "", "", ""]])
    with pytest.raises(imports.MappingError, match="first line is not valid utf-32"):
        run_import(app, good + b"\x00", encoding="utf-32")
    # Valid UTF-16 for more than the decoder's first chunk (blank lines are skipped), then
    # a lone surrogate: the lines before are imported, the rest is one refused line.
    text = good.decode("utf-8") + "\r\n" * 8000
    data = text.encode("utf-16-le") + b"\x00\xd8a\x00"
    report = run_import(app, data, encoding="utf-16-le")
    assert report.created == 1
    assert report.refused == 1
    assert "not valid utf-16-le from here on" in report.refused_lines[0].detail


@pytest.mark.parametrize("codec", ["rot13", "base64", "zlib", "uu", "idna", "undefined"])
def test_a_codec_that_reads_no_text_is_refused_as_unknown(app, codec):
    """Python knows codecs that are no text encoding (bytes to bytes) or refuse the
    reader's error handler: named as --encoding or the API's and console's encoding,
    they raised past the import (a traceback, a 500)."""
    data = csv_bytes([HEADER, ["w@example.org", "W", "", "", "", "", "", ""]])
    with pytest.raises(imports.MappingError, match=f"unknown encoding '{codec}'"):
        run_import(app, data, encoding=codec)
    client = app.test_client()
    token = factories.personal_token(app, "marketing")
    refused = client.post(
        f"/api/v1/imports?encoding={codec}",
        data=data,
        content_type="text/csv",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert lead_count(app) == 0


def test_re_permission_mails_are_rate_limited_per_hour(make_app, smtp_server):
    from tests.conftest import _smtp_config

    app = make_app(smtp_url=_smtp_config(smtp_server.port), import_repermission_per_hour=3)
    clock.freeze(dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC))
    rows = [HEADER] + [[f"r{i}@example.org", f"R{i}", "", "", "", "", "", ""] for i in range(5)]
    rows.append(["r5@example.org", "Deutsch", "", "", "", "", "", ""])
    report = run_import(app, csv_bytes(rows), language="de")
    assert report.repermission == 6
    queued = []
    for _ in range(5):  # the worker's job, minute after minute
        with uow(app) as s:
            queued.append(imports.send_repermissions(s))
        clock.advance(dt.timedelta(minutes=1))
    assert queued == [1, 1, 1, 0, 0]
    assert deliver(app) == 3
    mails = smtp_server.wait_for(3)
    assert all(m["Subject"] == "Möchten Sie weiter von uns hören?" for m in mails)
    body = mails[0].get_body(preferencelist=("plain",)).get_content()
    assert "keine Aufzeichnung Ihrer Einwilligung" in body
    # Unconfirmed until the contact confirms.
    to = mails[0]["To"]
    assert state_of(app, to) == ConsentStatus.PENDING
    client = app.test_client()
    page = client.get(path_of(confirm_link(mails[0])))
    token = CSRF.search(page.get_data(as_text=True)).group(1)
    assert (
        client.post(path_of(confirm_link(mails[0])), data={"csrf_token": token}).status_code == 200
    )
    assert state_of(app, to) == ConsentStatus.GRANTED

    # 10:01: the 9:00 mail is more than an hour old, the 9:01 and 9:02 ones are not.
    clock.advance(dt.timedelta(minutes=56))
    with uow(app) as s:
        assert imports.send_repermissions(s) == 1
        assert imports.send_repermissions(s) == 0  # three within the hour
    for _ in range(2):
        clock.advance(dt.timedelta(minutes=1))
        with uow(app) as s:
            assert imports.send_repermissions(s) == 1
    clock.advance(dt.timedelta(hours=2))
    with uow(app) as s:
        assert imports.send_repermissions(s) == 0  # all six asked
        requests = s.scalar(sa.select(sa.func.count()).select_from(OptInRequest))
        assert requests == 6


def test_cli_dry_run_report_and_real_run(app, tmp_path):
    rows = [
        HEADER,
        ["cli@example.org", "Cleo", "", "", "", "", "", ""],
        ["nope", "", "", "", "", "", "", ""],
    ]
    path = tmp_path / "contacts.csv"
    path.write_bytes(csv_bytes(rows))
    report = tmp_path / "report.csv"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["import", str(path), "--dry-run", "--report", str(report)], obj=app
    )
    assert result.exit_code == 0, result.output
    assert "line 2: created; re-permission mail queued: newsletter" in result.output
    assert "line 3: refused; email: not a valid address" in result.output
    assert "Dry run, nothing stored. 2 lines: 1 would be created" in result.output
    assert "cli@example.org" not in result.output
    written = list(csv.reader(report.open(encoding="utf-8")))
    assert written[0] == ["line", "outcome", "consent", "detail"]
    assert [row[:2] for row in written[1:]] == [["2", "created"], ["3", "refused"]]
    assert lead_count(app) == 0

    result = runner.invoke(cli, ["import", str(path)], obj=app)
    assert result.exit_code == 0, result.output
    assert "line 2" not in result.output  # the real run names the bad lines only
    assert "line 3: refused" in result.output
    assert "at most 200 an hour" in result.output
    assert lead_count(app) == 1

    # Each run (the dry one too: it tells which addresses are known) is one audit entry.
    from leadvault import audit

    with uow(app) as s:
        trail = list(reversed(audit.entries(s, audit.Filters(action="leads.imported"))))
    details = [audit.detail_of(e) for e in trail]
    assert [(d["dry_run"], d["created"], d["refused"]) for d in details] == [
        (True, 1, 1),
        (False, 1, 1),
    ]
    assert all(e.actor.startswith("cli:") for e in trail)
    assert all(d["completed"] and d["purposes"] == ["newsletter"] for d in details)
    assert "example.org" not in str(details)

    bad = runner.invoke(cli, ["import", str(path), "--purpose", "nope"], obj=app)
    assert bad.exit_code == 1
    assert "unknown purpose 'nope'" in bad.output
    bad = runner.invoke(cli, ["import", str(path), "--map", "oops"], obj=app)
    assert bad.exit_code == 2
    assert re.search(r"use COLUMN=FIELD", bad.output)
    # A report file that cannot be written was a FileNotFoundError's traceback.
    nowhere = tmp_path / "missing" / "report.csv"
    bad = runner.invoke(cli, ["import", str(path), "--report", str(nowhere)], obj=app)
    assert bad.exit_code == 1
    assert f"could not write to {nowhere}: No such file or directory" in bad.output
    assert "Traceback" not in bad.output and not isinstance(bad.exception, OSError)


def select_statements(app, data: bytes, *, kind: str = "SELECT", **kwargs) -> int:
    """Statements of ``kind`` (any engine; "" for all) an import of ``data`` sends."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith(kind):
            seen.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        run_import(app, data, **kwargs)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    return len(seen)


@pytest.mark.parametrize("dry_run", [True, False])
def test_known_addresses_are_read_once_per_chunk_not_per_line(app, dry_run):
    """Suppressions, known leads, their consents and waiting re-permissions: one read each
    per chunk, however many lines (a 10 000-line import was mostly round trips)."""
    emails = [f"k{i}@example.org" for i in range(40)]
    seed = [HEADER] + [[e, "", "", "", "", "", "", ""] for e in emails]  # re-permission waits
    run_import(app, csv_bytes(seed))

    def again(count: int) -> bytes:
        rows = [HEADER]
        for i, email in enumerate(emails[:count]):
            if i % 2:
                rows.append([email, "Kim", "", "", "", "2021-03-04", "fair", PROOF_TEXT])
            else:
                rows.append([email, "", "Known", "", "", "", "", ""])
        return csv_bytes(rows)

    run_import(app, again(2))  # the imported consent text exists from here on
    few = select_statements(app, again(4), dry_run=dry_run, chunk_size=200)
    many = select_statements(app, again(40), dry_run=dry_run, chunk_size=200)
    assert many == few


def test_a_line_failing_in_the_database_leaves_the_others_of_its_chunk(app, monkeypatch):
    """A line whose storing fails in the database is refused with its savepoint; the lines
    after it in the same chunk see what the lines before it stored, and the ledger holds."""
    real = import_consent.grant

    def failing(session, *args, proof, **kwargs):
        row = real(session, *args, proof=proof, **kwargs)  # its ledger entry waits too
        if proof.source == "boom":
            session.flush()
            raise sa.exc.IntegrityError("INSERT", {}, Exception("boom"))
        return row

    monkeypatch.setattr(import_consent, "grant", failing)
    data = csv_bytes(
        [
            HEADER,
            ["a@example.org", "Ann", "", "", "", "2021-01-01", "web", PROOF_TEXT],
            ["b@example.org", "Bob", "", "", "", "2021-01-01", "boom", PROOF_TEXT],
            ["A@example.org", "", "Ames", "", "", "", "", ""],
            ["b@example.org", "Bea", "", "", "", "", "", ""],
            ["c@example.org", "Cy", "", "", "", "2021-01-01", "web", PROOF_TEXT],
        ]
    )
    report = run_import(app, data)
    assert [(r.line, r.detail) for r in report.refused_lines] == [
        (3, "not stored (IntegrityError)")
    ]
    assert (report.created, report.merged) == (3, 1)
    with uow(app) as s:
        a = leads.find_by_email(s, "a@example.org")
        assert leads.attributes_of(s, a) == {"first_name": "Ann", "last_name": "Ames"}
        b = leads.find_by_email(s, "b@example.org")
        assert leads.attributes_of(s, b) == {"first_name": "Bea"}
        assert s.get(ImportPermission, b.id).purposes == ["newsletter"]
        assert ledger.verify(s).ok
        confirmed = [e.subject for e in ledger.CHAIN.entries(s) if e.event == "confirmed"]
        assert confirmed == [str(a.id), str(leads.find_by_email(s, "c@example.org").id)]
    assert state_of(app, "a@example.org") == ConsentStatus.GRANTED
    assert state_of(app, "b@example.org") == ConsentStatus.NONE


def test_proof_in_a_later_import_ends_the_waiting_re_permission(app):
    first = csv_bytes([HEADER, ["w@example.org", "Wim", "", "", "", "", "", ""]])
    run_import(app, first)
    with uow(app) as s:
        lead = leads.find_by_email(s, "w@example.org")
        assert s.get(ImportPermission, lead.id) is not None
    second = csv_bytes([HEADER, ["w@example.org", "", "", "", "", "2021-01-01", "web", PROOF_TEXT]])
    report = run_import(app, second)
    assert (report.merged, report.consent_imported) == (1, 1)
    with uow(app) as s:
        assert s.get(ImportPermission, lead.id) is None
    assert state_of(app, "w@example.org") == ConsentStatus.GRANTED


def test_new_addresses_are_written_by_a_few_statements_per_chunk(app):
    """A chunk's new leads, their fields, consents, re-permissions and ledger entries are
    written together at its end, not line by line (savepoints only when a line fails)."""

    def new(count: int, prefix: str) -> bytes:
        rows = [HEADER]
        for i in range(count):
            proof = ["2021-03-04", "fair", PROOF_TEXT] if i % 2 else ["", "", ""]
            rows.append([f"{prefix}{i}@example.org", "Nia", "New", "ACME", "DE", *proof])
        return csv_bytes(rows)

    run_import(app, new(2, "warm"))  # the imported consent text exists from here on
    few = select_statements(app, new(4, "few"), kind="", chunk_size=200)
    many = select_statements(app, new(40, "many"), kind="", chunk_size=200)
    assert many == few
    with uow(app) as s:
        assert ledger.verify(s).ok
        assert s.scalar(sa.select(sa.func.count()).select_from(ImportPermission)) == 2 + 20 + 1
