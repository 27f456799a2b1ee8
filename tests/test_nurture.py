"""Nurture: sequence files, mails, caps and quiet hours, clicks, bounces, versions, reports."""

from __future__ import annotations

import datetime as dt
import json
import re
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from consent import service as consent_service
from consent.models import ConsentStatus, LedgerEntry
from leadvault import clock, leads
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.settings import QuietHours, load
from nurture import mails, parser, render, tick, timing
from nurture.definition import Wait
from nurture.models import Enrollment, MailSuppression, Send
from tests.conftest import _smtp_config, deliver, unique_email
from tests.factories import tampered
from tests.nurture_helpers import (
    THREE_STEPS,
    form,
    html_of,
    lead,
    links,
    load_sequence,
    path_of,
    text_of,
    uow,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "nurture" / "sequence.example.toml"
MONDAY = dt.datetime(2026, 3, 2, 8, 30, tzinfo=dt.UTC)  # 09:30 in Berlin


def cli_env(app) -> dict[str, str]:
    settings = runtime(app).settings
    return {
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
    }


# --- sequence files ---------------------------------------------------------------------


def test_example_sequence_parses():
    parsed = parser.parse(EXAMPLE.read_text(), known_purposes={"newsletter": True})
    assert parsed.key == "onboarding"
    assert [step.kind for step in parsed.steps] == [
        "mail",
        "wait",
        "branch",
        "mail",
        "wait",
        "mail",
    ]
    assert parsed.steps[2].then == 5 and parsed.steps[2].otherwise == 3
    assert parsed.mails[("welcome", "de")].links == ("https://www.example.com/de/leitfaden",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('key = "onboarding"', 'key = "On Boarding"'), "key must be"),
        (('purpose = "newsletter"             #', 'purpose = "sales"  #'), "unknown purpose"),
        (('on = "purpose_confirmed"', 'on = "opened"'), "on must be one of"),
        (("wait = { days = 3 }", "wait = { days = -3 }"), "days must be a number"),
        (
            ('wait = { until = "tuesday 10:00", zone = "lead" }', 'wait = { until = "tue 25:00" }'),
            "until must be",
        ),
        (
            ('if = { clicked = "welcome" }', 'if = { opened = "welcome" }'),
            "opened is never a condition",
        ),
        (('then = "case-study"', 'then = "welcome"'), "may only go forward"),
        (('else = "reminder"', 'else = "nowhere"'), "no step named"),
        (('mail = "reminder"', 'mail = "missing"'), "no template"),
        (('name = "pause"', 'name = "welcome"'), "used twice"),
        (('stage = "sal"', 'stage = "new"'), "mql or later"),
        (
            ('subject = "Did you get a chance to read the guide?"', 'subject = ""'),
            "subject must be",
        ),
    ],
)
def test_sequence_errors_name_the_line(change, message):
    text = EXAMPLE.read_text()
    assert change[0] in text, change[0]
    line = text[: text.index(change[0])].count("\n") + 1
    with pytest.raises(parser.SequenceError) as caught:
        parser.parse(
            text.replace(change[0], change[1], 1),
            source="seq.toml",
            known_purposes={"newsletter": True, "tracking": False},
        )
    assert str(caught.value).startswith(f"seq.toml:{line}:"), str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (('subject = "Did you get', 'subject = "Hi\\r\\nBcc: x@example.org. Did you get'), "000D"),
        (('subject = "Did you get', 'subject = "\\u202eDid you get'), "202E"),
        (('subject = "Did you get', 'subject = "Tab\\tDid you get'), "0009"),
        (('name = "Newsletter onboarding"', 'name = "News\\u0000letter"'), "0000"),
        (('name = "Newsletter onboarding"', 'name = "News\\u001b[2Jletter"'), "001B"),
    ],
)
def test_a_subject_or_name_with_a_control_character_is_refused(change, code):
    """A line break in a subject is a header no mail can have: loaded, it failed the
    worker on every mail of the step; NUL in a name failed the load on PostgreSQL with
    a traceback. Both are refused with their line and character."""
    text = EXAMPLE.read_text()
    assert change[0] in text, change[0]
    line = text[: text.index(change[0])].count("\n") + 1
    with pytest.raises(parser.SequenceError) as caught:
        parser.parse(text.replace(change[0], change[1], 1), source="seq.toml")
    assert str(caught.value).startswith(f"seq.toml:{line}: "), str(caught.value)
    assert f"U+{code}" in str(caught.value)


def test_a_mail_body_with_a_control_character_is_refused_with_its_line():
    text = EXAMPLE.read_text()
    escape = text.replace("thank you for subscribing.", "thank you\\u001b[31m for subscribing.", 1)
    line = text[: text.index("thank you for subscribing.")].count("\n") + 1
    with pytest.raises(parser.SequenceError) as caught:
        parser.parse(escape, source="seq.toml")
    assert str(caught.value).startswith(f"seq.toml:{line}: the mail holds "), str(caught.value)
    assert "U+001B" in str(caught.value)
    lines = text.split("\n")
    start = lines.index("[mails.reminder.de]")
    body_end = next(i for i in range(start + 3, len(lines)) if lines[i] == '"""')
    lines[start + 2 : body_end + 1] = ['file = "r.de.md"']
    in_file = "\n".join(lines)
    with pytest.raises(parser.SequenceError, match=r"^r\.de\.md:2: .*U\+0007"):
        parser.parse(in_file, source="seq.toml", files={"r.de.md": "Hallo\n\u0007 da\n"})
    # Line breaks and tabs are a body's own.
    parser.parse(in_file, source="seq.toml", files={"r.de.md": "Hallo\r\n\tda\n"})


def test_a_subject_with_a_line_break_never_reaches_the_outbox(app, tmp_path):
    text = THREE_STEPS.format(key="crlf").replace(
        'subject = "crlf two"', 'subject = "crlf\\r\\ntwo"'
    )
    path = tmp_path / "crlf.toml"
    path.write_text(text)
    refused = CliRunner().invoke(cli, ["nurture", "load", str(path)], env=cli_env(app), obj=app)
    assert refused.exit_code == 1 and "U+000D" in refused.output, refused.output
    assert refused.exception is None or isinstance(refused.exception, SystemExit)


def test_a_version_stored_before_the_check_still_reads_back(app):
    """Stored versions are parsed again (the active set): one loaded before control
    characters were refused must not make every reader of the active set fail."""
    from nurture import sequences
    from nurture.models import SequenceVersion

    load_sequence(app, THREE_STEPS.format(key="old"))
    with uow(app) as s:
        row = s.scalars(sa.select(SequenceVersion).where(SequenceVersion.key == "old")).one()
        row.raw_text = row.raw_text.replace('name = "Three steps"', 'name = "Three\\tsteps"')
        row.sha256 = "older"
    with uow(app) as s:
        assert sequences.active(s).by_key("old").name == "Three\tsteps"


def test_a_mail_with_a_line_break_in_a_header_fails_alone(app, smtp_server):
    """A mail whose subject holds a line break (a version stored before subjects were
    checked) is marked failed; it no longer fails the worker's batch, which claimed it
    again and again, holding back every mail in the batch with it."""
    from leadvault.models import OutboxMessage, OutboxStatus
    from nurture import sequences
    from nurture.models import SequenceVersion

    load_sequence(app, THREE_STEPS.format(key="broken"))
    load_sequence(app, THREE_STEPS.format(key="good"))
    with uow(app) as s:
        row = s.scalars(sa.select(SequenceVersion).where(SequenceVersion.key == "broken")).one()
        row.raw_text = row.raw_text.replace('subject = "broken one"', 'subject = "broken\\r\\none"')
        row.sha256 = "stored before subjects were checked"
    with uow(app) as s:
        for key in ("broken", "good"):
            parsed = sequences.parsed(sequences.row(s, key))
            mails.send_test(s, parsed, "one", "en", "me@example.org")
    deliver(app)  # no exception: the good mail is sent, the broken one fails
    assert [m["Subject"] for m in smtp_server.messages] == ["[Test] good one"]
    with uow(app) as s:
        outcomes = s.execute(
            sa.select(OutboxMessage.status, OutboxMessage.last_error).order_by(OutboxMessage.id)
        ).all()
    assert outcomes[0].status == OutboxStatus.FAILED and "line break" in outcomes[0].last_error
    assert outcomes[1].status == OutboxStatus.SENT


def test_template_errors_name_the_line_in_the_file():
    text = EXAMPLE.read_text()
    broken = text.replace(
        "thank you for subscribing.", "thank you for subscribing.\n{{ frist_name }}", 1
    )
    line = broken[: broken.index("{{ frist_name }}")].count("\n") + 1
    with pytest.raises(parser.SequenceError) as caught:
        parser.parse(broken, source="seq.toml")
    assert str(caught.value).startswith(f"seq.toml:{line}: unknown variable 'frist_name'")
    image = text.replace("Here is our guide:", "![logo](https://www.example.com/logo.png)", 1)
    with pytest.raises(parser.SequenceError, match="images are not allowed"):
        parser.parse(image, source="seq.toml")
    # A template in a file of its own: errors name that file and its line.
    head = '[mails.reminder.de]\nsubject = "Hatten Sie schon Zeit für den Leitfaden?"\n'
    in_file = text.replace(head + 'markdown = """', head + 'file = "r.de.md"\n_x = """')
    with pytest.raises(parser.SequenceError, match="unknown key '_x'"):
        parser.parse(in_file, source="seq.toml", files={"r.de.md": "Hallo"})
    lines = text.split("\n")
    start = lines.index("[mails.reminder.de]")
    body_end = next(i for i in range(start + 3, len(lines)) if lines[i] == '"""')
    lines[start + 2 : body_end + 1] = ['file = "r.de.md"']
    file_text = "\n".join(lines)
    parsed = parser.parse(file_text, source="seq.toml", files={"r.de.md": "{{ greeting }} hier"})
    assert parsed.mails[("reminder", "de")].links == ()
    with pytest.raises(parser.SequenceError) as caught:
        parser.parse(file_text, source="seq.toml", files={"r.de.md": "ok\n\n{% if %}"})
    assert str(caught.value).startswith("r.de.md:3:")


def test_lead_values_are_text_never_markup_or_links():
    compiled = render.compile_mail(
        "Hi {{ first_name }}", "{{ greeting }} [Guide](https://www.example.com/g) {{ company }}"
    )
    out = render.render(
        compiled,
        {
            "greeting": 'Hallo <b>x</b><meta http-equiv="refresh" content="0;url=https://evil.example">,',
            "first_name": "A\r\nBcc: x@evil.example",
            "company": "[win](https://evil.example) <https://evil.example> **bold**",
        },
        lambda index, target: f"https://lv.example/n/{index}",
    )
    assert "\n" not in out.subject and out.subject == "Hi A Bcc: x@evil[.]example"
    assert "<b>" not in out.html and "<meta" not in out.html and "&lt;b&gt;" in out.html
    assert out.html.count("<a ") == 1 and 'href="https://lv.example/n/0"' in out.html
    assert "evil.example" not in out.html.split("</a>")[0].split("<a ")[1]
    assert "<strong>" not in out.html
    # Shown as typed, never a link, not even one a mail client would make of the text.
    assert "[win](https[:]//evil[.]example)" in out.text
    assert "evil.example" not in out.text and "evil.example" not in out.html


def test_german_greeting_uses_the_name_or_a_formal_fallback(app):
    with app.app_context():
        assert mails.greeting("de", "Julia") == "Hallo Julia,"
        assert mails.greeting("de", None) == "Guten Tag,"
        assert mails.greeting("en", "  ") == "Hello,"


# --- timing -------------------------------------------------------------------------------


def test_waits_caps_and_quiet_hours():
    berlin = ZoneInfo("Europe/Berlin")
    now = MONDAY
    assert timing.wait_until(Wait(delay=dt.timedelta(days=2)), now, berlin) == now + dt.timedelta(
        days=2
    )
    tuesday = timing.wait_until(Wait(weekday=1, at=dt.time(10, 0)), now, berlin)
    assert tuesday.astimezone(berlin) == dt.datetime(2026, 3, 3, 10, 0, tzinfo=berlin)
    same_day = timing.wait_until(Wait(at=dt.time(9, 0)), now, berlin)  # 09:00 is past: tomorrow
    assert same_day.astimezone(berlin).date() == dt.date(2026, 3, 3)
    friday_night = dt.datetime(2026, 3, 6, 22, 0, tzinfo=berlin)
    weekday = timing.wait_until(Wait(weekdays_only=True, at=dt.time(9, 0)), friday_night, berlin)
    assert weekday.astimezone(berlin) == dt.datetime(2026, 3, 9, 9, 0, tzinfo=berlin)
    assert timing.lead_zone({"country": "jp"}, berlin) == ZoneInfo("Asia/Tokyo")
    assert timing.lead_zone({"country": "US"}, berlin) == berlin  # several zones: the instance's

    settings = load({}, time_zone="Europe/Berlin")
    assert settings.nurture_quiet_hours == QuietHours(dt.time(20, 0), dt.time(8, 0))
    late = dt.datetime(2026, 3, 2, 21, 15, tzinfo=berlin)
    allowed, why = timing.allowed_after([], late, settings)
    assert why == "quiet" and allowed.astimezone(berlin) == dt.datetime(
        2026, 3, 3, 8, 0, tzinfo=berlin
    )
    early = dt.datetime(2026, 3, 3, 6, 0, tzinfo=berlin)
    assert timing.allowed_after([], early, settings)[0].astimezone(berlin).hour == 8
    sent = [MONDAY - dt.timedelta(days=1), MONDAY - dt.timedelta(days=3)]
    allowed, why = timing.allowed_after(sent, MONDAY, settings)
    # The older of the two mails leaves the 7-day window on Saturday at 09:30 Berlin.
    assert why == "cap" and allowed == MONDAY - dt.timedelta(days=3) + dt.timedelta(days=7)
    assert timing.allowed_after(sent[:1], MONDAY, settings) == (MONDAY, None)
    # The cap ends in the night: the mail waits for the morning.
    night = [
        dt.datetime(2026, 3, 1, 21, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 22, 0, tzinfo=dt.UTC),
    ]
    allowed, why = timing.allowed_after(night, MONDAY, settings)
    assert why == "cap" and allowed.astimezone(berlin) == dt.datetime(
        2026, 3, 9, 8, 0, tzinfo=berlin
    )


# --- the command line -------------------------------------------------------------------------


def test_cli_validate_load_list_show_preview_test_send_disable(app, smtp_server, tmp_path):
    runner = CliRunner()
    env = cli_env(app)
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace("wait = { days = 3 }", "wait = { weeks = 3 }"))
    result = runner.invoke(cli, ["nurture", "validate", str(bad)], env=env, obj=app)
    assert result.exit_code == 1 and f"{bad}:38: wait: unknown key 'weeks'" in result.output
    good = tmp_path / "onboarding.toml"
    good.write_text(EXAMPLE.read_text())
    result = runner.invoke(cli, ["nurture", "validate", str(good)], env=env, obj=app)
    assert result.exit_code == 0 and "is valid (6 steps, 3 mails in en, de)" in result.output
    for version in (1, 2):
        result = runner.invoke(cli, ["nurture", "load", str(good)], env=env, obj=app)
        assert result.exit_code == 0, result.output
        assert f"version {version} is active" in result.output
    listed = runner.invoke(cli, ["nurture", "list"], env=env, obj=app)
    assert "* onboarding" in listed.output and "  onboarding" in listed.output
    shown = runner.invoke(cli, ["nurture", "show", "onboarding"], env=env, obj=app)
    assert "v2 (active)" in shown.output
    assert "clicked-guide" in shown.output and "-> case-study else reminder" in shown.output
    preview = runner.invoke(
        cli, ["nurture", "preview", "onboarding", "welcome", "--lang", "de"], env=env, obj=app
    )
    assert preview.exit_code == 0, preview.output
    assert "Subject: Ihr Leitfaden" in preview.output and "Hallo Julia," in preview.output
    assert "Impressum" in preview.output  # the instance's mail layout
    html = runner.invoke(
        cli, ["nurture", "preview", "onboarding", "welcome", "--html"], env=env, obj=app
    )
    # The layout's CSS is inlined into style attributes (leadvault.branding).
    assert re.search(
        r'<a href="https://www.example.com/guide"[^>]*>Read the guide</a>', html.output
    )
    missing = runner.invoke(cli, ["nurture", "preview", "onboarding", "nope"], env=env, obj=app)
    assert missing.exit_code == 1 and "has no mail 'nope'" in missing.output
    sent = runner.invoke(
        cli,
        ["nurture", "test-send", "onboarding", "welcome", "--to", "editor@example.org"],
        env=env,
        obj=app,
    )
    assert sent.exit_code == 0, sent.output
    deliver(app)
    [mail] = [m for m in smtp_server.messages if m["To"] == "editor@example.org"]
    assert mail["Subject"] == "[Test] Your guide to privacy-first lead capture"
    assert "Hi Julia," in text_of(mail)
    bad_to = runner.invoke(
        cli, ["nurture", "test-send", "onboarding", "welcome", "--to", "x"], env=env, obj=app
    )
    assert bad_to.exit_code == 2
    off = runner.invoke(cli, ["nurture", "disable", "onboarding"], env=env, obj=app)
    assert "disabled" in off.output
    assert "  onboarding" in runner.invoke(cli, ["nurture", "list"], env=env, obj=app).output
    assert runner.invoke(cli, ["nurture", "disable", "nothing"], env=env, obj=app).exit_code == 1


# --- sending -------------------------------------------------------------------------------


def _setup(app, key="a"):
    clock.freeze(MONDAY)
    load_sequence(app, THREE_STEPS.format(key=key))
    return form(app)


def _tick(app):
    with uow(app) as s:
        return tick.run(s)


def test_mail_layout_headers_escaping_and_consent(make_app, smtp_server):
    app = make_app(
        smtp_url=_smtp_config(smtp_server.port),
        time_zone="Europe/Berlin",
        bounce_domain="bounces.example.org",
    )
    form_id = _setup(app)
    hostile = {"first_name": "<b>x</b>", "company": "[c](https://evil.example)"}
    german = lead(app, form_id, unique_email("de"), profile=hostile, language="de")
    _tick(app)
    deliver(app)
    [mail] = [m for m in smtp_server.messages if str(m["Subject"]) == "a eins"]
    assert mail["Content-Language"] == "de"
    body = text_of(mail)
    assert body.startswith("Hallo <b>x</b>,")
    assert (
        "Sie erhalten diese E-Mail, weil Sie Folgendes abonniert haben: Newsletter per E-Mail."
        in body
    )
    assert "Impressum" in body
    html = html_of(mail)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "Mit einem Klick abmelden" in html
    # The envelope sender is the VERP address; the header itself is not sent.
    with uow(app) as s:
        send = s.scalars(sa.select(Send).where(Send.lead_id == german)).one()
        verp = mails.verp_address(s, send.id)
        assert verp.startswith("bounce+") and verp.endswith("@bounces.example.org")
        assert mails.read_verp(s, verp) == send.id
        assert (
            mails.read_verp(s, f"bounce+{send.id:x}-0000000000000000@bounces.example.org") is None
        )
    assert mail["Return-Path"] is None
    index = [str(m["Subject"]) for m in smtp_server.messages].index("a eins")
    assert smtp_server.envelope_senders[index] == verp


def test_no_consent_no_mail_and_a_lead_is_in_a_sequence_once(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port))
    form_id = _setup(app)
    lead_id = lead(app, form_id, unique_email("once"))
    with uow(app) as s:
        from nurture import sequences, service

        sequence = sequences.active(s).by_key("a")
        assert service.enter(s, lead_id, sequence) is None  # already in it
        assert s.scalar(sa.select(sa.func.count()).select_from(Enrollment)) == 1
        # Withdrawn before the tick: the run ends, no mail is queued.
        consent_service.withdraw(
            s, lead_id, ["newsletter"], meta=consent_service.ledger.RequestMeta()
        )
    assert _tick(app).sent == 0
    with uow(app) as s:
        run = s.scalars(sa.select(Enrollment)).one()
        assert (run.status, run.exit_reason) == ("exited", "unsubscribed")
        # Without reentry it does not start again after a new confirmation.
        assert service.enter(s, lead_id, sequences.active(s).by_key("a")) is None


def test_click_redirect_refuses_foreign_targets_and_counts_only_with_consent(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port))
    form_id = _setup(app)
    tracked = lead(app, form_id, unique_email("t"), purposes=("newsletter", "tracking"))
    _tick(app)
    deliver(app)
    [mail] = [m for m in smtp_server.messages if str(m["Subject"]) == "a one"]
    link = links(mail)[0]
    client = app.test_client()
    with uow(app) as s:
        from leadvault.db import vault_of

        send = s.scalars(sa.select(Send)).one()
        forged = vault_of(s).sign(
            mails.CLICK_TOKEN, {"s": send.id, "k": 0, "u": "https://evil.example/"}
        )
        other_kind = vault_of(s).sign(
            "unsubscribe", {"s": send.id, "k": 0, "u": "https://www.example.com/guide"}
        )
    for token in (forged, other_kind, "garbage", tampered(link.rsplit("/", 1)[1])):
        reply = client.post(f"/n/{token}")
        assert reply.status_code == 400 and "Location" not in reply.headers
    # Tracking withdrawn after the mail went out: the link still works but counts nothing.
    with uow(app) as s:
        consent_service.withdraw(
            s, tracked, ["tracking"], meta=consent_service.ledger.RequestMeta()
        )
    reply = client.post(path_of(link))
    assert reply.status_code == 303 and reply.headers["Location"] == "https://www.example.com/guide"
    with uow(app) as s:
        from nurture.models import Click

        assert s.scalar(sa.select(sa.func.count()).select_from(Click)) == 0


@pytest.mark.parametrize("send_id", [2**64, 2**31, 0, -1])
def test_click_token_with_an_impossible_send_id_is_a_bad_link(app, send_id):
    """Signed with our key (so only a key holder can make one), yet no send can have
    that id: the answer of every bad click link, not a driver's overflow (a 500)."""
    from leadvault.db import vault_of

    with uow(app) as s:
        token = vault_of(s).sign(
            mails.CLICK_TOKEN, {"s": send_id, "k": 0, "u": "https://www.example.com/"}
        )
    client = app.test_client()
    for method in ("GET", "POST"):
        reply = client.open(f"/n/{token}", method=method)
        assert reply.status_code == 400, (method, reply.status_code)
        assert "Location" not in reply.headers


def test_new_version_moves_runs_at_their_next_step_by_name(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), nurture_max_mails=5)
    form_id = _setup(app)
    lead_id = lead(app, form_id, unique_email("v"))
    _tick(app)  # step 1 sent, waiting two days before "second"
    changed = THREE_STEPS.format(key="a").replace('subject = "a two"', 'subject = "a two (new)"')
    assert load_sequence(app, changed) == 2
    clock.advance(dt.timedelta(days=2))
    _tick(app)
    deliver(app)
    subjects = [str(m["Subject"]) for m in smtp_server.messages]
    assert "a two (new)" in subjects and "a two" not in subjects
    with uow(app) as s:
        run = s.scalars(sa.select(Enrollment).where(Enrollment.lead_id == lead_id)).one()
        assert run.version == 2
    # A version without the step the run waits at: the run finishes on its own version.
    renamed = changed.replace('name = "third"', 'name = "last"')
    assert load_sequence(app, renamed) == 3
    clock.advance(dt.timedelta(days=2))
    _tick(app)
    deliver(app)
    assert "a three" in [str(m["Subject"]) for m in smtp_server.messages]
    with uow(app) as s:
        run = s.scalars(sa.select(Enrollment).where(Enrollment.lead_id == lead_id)).one()
        assert (run.version, run.status) == (2, "completed")


# --- bounces and complaints -------------------------------------------------------------------

DSN = """From: MAILER-DAEMON@mx.example.org
To: {to}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

The mail could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822; {rcpt}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--b1
Content-Type: text/rfc822-headers

From: Leadvault <leadvault@localhost>
To: {rcpt}
Subject: a one

--b1--
"""

ARF = """From: feedback@isp.example
To: abuse@example.org
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b2"

--b2
Content-Type: text/plain

This is an abuse report.

--b2
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ISP-FBL/1.0
Version: 1

--b2
Content-Type: message/rfc822

From: Leadvault <leadvault@localhost>
To: redacted@isp.example
Subject: a one
List-Unsubscribe: <{unsubscribe}>

Hello.

--b2--
"""


def test_bounces_ingest_suppresses_and_complaints_withdraw(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), bounce_domain="bounces.example.org")
    form_id = _setup(app)
    bounced_address, complainer_address = unique_email("gone"), unique_email("angry")
    bounced = lead(app, form_id, bounced_address)
    complainer = lead(
        app, form_id, complainer_address, purposes=("newsletter", "tracking", "sales_contact")
    )
    _tick(app)
    deliver(app)
    with uow(app) as s:
        verp = mails.verp_address(
            s, s.scalars(sa.select(Send.id).where(Send.lead_id == bounced)).one()
        )
    complaint_mail = next(
        m
        for m in smtp_server.messages
        if m["To"] == complainer_address and str(m["Subject"]) == "a one"
    )
    unsubscribe = str(complaint_mail["List-Unsubscribe"]).split("<")[1].split(">")[0]
    runner = CliRunner()
    env = cli_env(app)

    soft = DSN.format(to=verp, rcpt=bounced_address, action="delayed", status="4.2.2")
    result = runner.invoke(cli, ["bounces", "ingest"], input=soft, env=env, obj=app)
    assert result.exit_code == 0 and "bounce: soft" in result.output
    hard = DSN.format(to=verp, rcpt=bounced_address, action="failed", status="5.1.1")
    result = runner.invoke(cli, ["bounces", "ingest"], input=hard, env=env, obj=app)
    assert result.exit_code == 0 and "bounce: suppressed" in result.output
    assert bounced_address not in result.output
    result = runner.invoke(
        cli, ["bounces", "ingest"], input=ARF.format(unsubscribe=unsubscribe), env=env, obj=app
    )
    assert result.exit_code == 0 and "complaint: withdrawn" in result.output
    junk = runner.invoke(cli, ["bounces", "ingest"], input="Subject: hi\n\nhello", env=env, obj=app)
    assert junk.exit_code == 0 and "not_a_report" in junk.output

    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MailSuppression)) == 1
        runs = {r.lead_id: r for r in s.scalars(sa.select(Enrollment))}
        assert runs[bounced].exit_reason == "bounced"
        assert runs[complainer].exit_reason == "complaint"
        states = consent_service.states(s, complainer)
        assert states["newsletter"].status == ConsentStatus.WITHDRAWN
        assert states["sales_contact"].status == ConsentStatus.WITHDRAWN
        assert states["tracking"].status == ConsentStatus.GRANTED  # not a marketing purpose
        assert (
            s.scalars(
                sa.select(LedgerEntry.detail).where(
                    LedgerEntry.subject == str(complainer), LedgerEntry.event == "withdrawn"
                )
            ).all()
            == ["spam complaint (ARF report)"] * 2
        )
        assert (
            s.scalars(sa.select(Send.bounced_at).where(Send.lead_id == bounced)).one() is not None
        )
    # The bounce shows on the lead.
    shown = runner.invoke(cli, ["nurture", "lead", "--email", bounced_address], env=env, obj=app)
    overview = json.loads(shown.output)
    assert overview["bounce_suppression"]["status"] == "5.1.1"
    assert overview["sequences"][0]["exit_reason"] == "bounced"
    # A suppressed address enters no sequence; confirming again lifts the suppression.
    with uow(app) as s:
        from nurture import sequences, service

        assert service.enter(s, bounced, sequences.active(s).by_key("a")) is None
    report = runner.invoke(cli, ["report", "nurture"], env=env, obj=app)
    assert report.exit_code == 0, report.output
    first_row = next(
        line for line in report.output.splitlines() if line.strip().startswith("first")
    )
    # sent, clicked, unsubscribed (the complaint), bounced, mql, handed off
    assert first_row.split()[2:] == ["2", "0", "1", "1", "0", "0"]
    assert "entered=2 running=0 completed=0 exited=2 (bounced=1, complaint=1)" in report.output


def test_access_export_and_erasure_cover_nurture(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port))
    form_id = _setup(app)
    lead_id = lead(app, form_id, unique_email("x"))
    _tick(app)
    with uow(app) as s:
        from consent import rights

        export = rights.access_export(s, leads.get(s, lead_id))
        assert export["nurture"]["mails"][0]["step"] == "first"
        rights.erase(s, leads.get(s, lead_id))
    with uow(app) as s:
        for model in (Enrollment, Send):
            assert s.scalar(sa.select(sa.func.count()).select_from(model)) == 0


def _message(text: str) -> EmailMessage:
    from email import message_from_string, policy

    return message_from_string(text, policy=policy.default)  # type: ignore[return-value]


@pytest.mark.committing  # two sessions on two connections
def test_tick_leaves_a_lead_a_request_holds_to_the_next_tick(make_app, smtp_server, backend):
    if backend != "postgresql":
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) are a PostgreSQL feature")
    app = make_app(smtp_url=_smtp_config(smtp_server.port))
    form_id = _setup(app)
    busy = lead(app, form_id, unique_email("busy"))
    lead(app, form_id, unique_email("free"))
    with app.app_context():
        holder = runtime(app).session_factory()
        try:
            assert leads.get(holder, busy, for_update=True) is not None  # a request's lock
            result = _tick(app)  # does not wait for it, does not deadlock
            assert (result.due, result.sent) == (1, 1)
        finally:
            holder.rollback()
            holder.close()
    assert _tick(app).sent == 1
